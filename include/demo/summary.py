"""``python -m include.demo.summary``: what the last retrain produced and where to look.

Reads the real systems (MLflow registry, the MongoDB monitoring collection, the mail sink), not the
Airflow logs, so it shows what a user of the model would see.
"""

from __future__ import annotations

import email
import email.policy
import os
import sys
from pathlib import Path

from include.retraining.adapters import mongo, registry
from include.retraining.airflow.runtime import env_config
from include.retraining.core.config import PipelineConfig


def latest_mail(sink_dir: str | None) -> tuple[Path, str] | None:
    if not sink_dir or not Path(sink_dir).is_dir():
        return None
    messages = sorted((p for p in Path(sink_dir).rglob("*") if p.is_file()), key=lambda p: p.stat().st_mtime)
    if not messages:
        return None
    message = email.message_from_bytes(messages[-1].read_bytes(), policy=email.policy.default)
    return messages[-1], str(message["Subject"])


def fitted_rows(tags: dict[str, str]) -> str:
    """How many rows the champion was fitted on, from when to when, and whether that was the final refit."""
    rows, start, end = (tags.get(f"window.fitted.{key}") for key in ("rows", "start", "end"))
    if rows is None:  # a version registered before the fitted slice was recorded
        return f"{tags.get('window.training.rows', '?')} rows"
    refit = ", the refit on training + holdout" if tags.get("refit") == "true" else ""
    return f"{int(rows):,} rows, {start[:16]} .. {end[:16]}{refit}"


def champion_lines(config: PipelineConfig) -> list[str]:
    champion = registry.champion(config.mlflow, config.model_name)
    if champion is None:
        return [f"model:          {config.model_name} has no champion yet"]
    tags = registry.version_tags(config.mlflow, config.model_name, champion.version)
    metrics = registry.run_metrics(config.mlflow, tags["mlflow_run_id"])
    holdout = ", ".join(
        f"{k.removeprefix('holdout_')} {v:.3f}" for k, v in sorted(metrics.items()) if k.startswith("holdout_")
    )
    base = config.mlflow.tracking_uri.rstrip("/")
    return [
        f"model:          {config.model_name} version {champion.version} is 'champion'",
        f"holdout:        {holdout}",
        f"gate:           {tags.get('gate_reason', '-')}",
        f"fitted on:      {fitted_rows(tags)} ({tags.get('training_uri', '?')})",
        f"MLflow UI:      {base}/#/models/{config.model_name}",
        f"REST (alias):   curl '{base}/api/2.0/mlflow/registered-models/alias?name={config.model_name}&alias=champion'",
    ]


def drift_lines(config: PipelineConfig) -> list[str]:
    source = config.source
    checks = mongo.latest_documents(
        source.conn_id, config.monitoring_database, config.monitoring.collection, sort_field="checked_at"
    )
    if not checks:
        return ["drift:          no check recorded yet"]
    check = checks[0]
    drifted = [c["column"] for c in check["columns"] if c["drifted"]]
    return [
        f"rows checked:   {check['rows_current']} (reference {check['rows_reference']})",
        f"drift:          {check['status']}, share {check['drift_share']:.2f}"
        + (f" ({', '.join(drifted)})" if drifted else ""),
        f"drift report:   {report_link(config, check['report_uri'])}",
        f"monitoring:     {config.monitoring_database}.{config.monitoring.collection} in MongoDB",
    ]


def report_link(config: PipelineConfig, report_uri: str | None) -> str:
    """The report in the MLflow UI, an http link to click (not the ``runs:/`` URI only MLflow reads)."""
    if not report_uri:
        return "none (no reference yet: the first model defines it)"
    return registry.artifact_url(config.mlflow, report_uri)


def main() -> int:
    config = env_config()
    lines = ["", "=== retrain_vehicle_insurance: result ===", *champion_lines(config), *drift_lines(config)]
    mail = latest_mail(os.environ.get("MAIL_SINK_DIR"))
    lines.append(f"summary mail:   {mail[1]!r} in {mail[0]}" if mail else "summary mail:   none in the sink")
    lines += ["", "The local stack keeps running for you to browse; `make down` stops it.", ""]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
