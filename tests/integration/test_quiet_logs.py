"""What a task's log holds is what a person reads: loading a model adds no deprecation flood and no
progress bar. Each check runs in a fresh interpreter that has imported Airflow, as a task process has."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration


def task_process_output(code: str) -> str:
    script = "import airflow.sdk  # a task process has Airflow loaded\n" + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    return done.stdout + done.stderr


def test_importing_skops_after_airflow_floods_the_log_unless_quieted():
    plain = task_process_output("import skops.io")
    quiet = task_process_output(
        "from include.retraining.adapters.registry.models import quiet_skops_io\nquiet_skops_io()"
    )

    assert plain.count("deprecated") > 500  # what the task logs held: one warning per scipy ufunc and module
    assert "deprecated" not in quiet


def test_loading_a_registered_model_logs_no_warning_and_no_progress_bar(stack_env, logged_model):
    config, model_uri, digest = logged_model
    output = task_process_output(f"""
        import logging
        from include.retraining.adapters import registry
        from include.retraining.core.config import MlflowConfig
        logging.basicConfig(level=logging.WARNING)
        mlflow = MlflowConfig(tracking_uri={config.mlflow.tracking_uri!r}, experiment={config.mlflow.experiment!r})
        registry.load_model(mlflow, {model_uri!r}, {digest!r})
        print("loaded")
    """)

    lines = output.strip().splitlines()
    assert lines[-1] == "loaded"
    assert "Downloading artifacts" not in output
    assert len(lines) <= 3, output[:2000]


@pytest.fixture(scope="module")
def logged_model(config_factory, make_frame):
    """A small model logged the pipeline's way, and its digest."""
    from datetime import UTC, datetime

    from include.retraining.adapters import registry
    from include.retraining.core.records import RunInfo, Snapshot
    from include.retraining.core.training import fit

    config = config_factory()
    frame = make_frame(300, seed=3)
    train = frame[[*config.contract.feature_names, "Response"]].assign(Response=frame["Response"].astype("int64"))
    snapshot = Snapshot(f"s3://{config.storage.bucket}/x.parquet", len(train), "ab" * 32, None,
                        datetime.now(UTC).isoformat(), tuple(train.columns))  # fmt: skip
    run = RunInfo(dag_id="retrain_quiet", run_id="quiet", run_end=datetime.now(UTC).isoformat())
    run_id = registry.pipeline_run(config, run)
    model = fit(train, config.contract, config.training)
    model_uri = registry.log_training(config.mlflow, run_id, model, train, snapshot, "Response", {}, {})
    return config, model_uri, registry.model_digest(config.mlflow, model_uri)
