"""MLflow: `mlflow server` with a SQLite backend store and the artifacts in the S3 bucket (--serve-artifacts)."""

from __future__ import annotations

from pathlib import Path

from .s3 import BUCKET
from .supervisor import BIN, HOST, Service, http_get


def env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    url = f"http://{HOST}:{ports['mlflow']}"
    return {"MLFLOW_TRACKING_URI": url, "AIRFLOW_VAR_MLFLOW_TRACKING_URI": url}


SERVICE = Service(
    "mlflow",
    command=lambda state, ports: [
        *(str(BIN / "mlflow"), "server", "--host", HOST, "--port", str(ports["mlflow"])),
        *("--backend-store-uri", f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"),
        *("--artifacts-destination", f"s3://{BUCKET}/mlflow", "--serve-artifacts", "--workers", "1"),
    ],
    ready=lambda port: http_get(f"http://{HOST}:{port}/health") == (200, b"OK"),
    describe=lambda state, port: f"http://{HOST}:{port}",
    env=env,
    timeout=90.0,  # about 10-20 s cold (it creates its tables), longer on a busy machine
    # Without it the server forks a job runner with 7 workers (2.4 GB RSS instead of about 0.5 GB).
    own_env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
)
