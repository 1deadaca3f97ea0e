"""A running task's configuration and run identity.

Only called inside tasks (never at DAG parse time): it reads Airflow Variables through the Task SDK.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from include.retraining.airflow.params import param_overrides
from include.retraining.core.config import ConfigError, PipelineConfig, load_config
from include.retraining.core.records import DriftResult, RecordError, RunInfo

# conf keys a triggering DAG (drift_monitor) may pass; they end up in MLflow and model-version tags
TRIGGER_KEYS = ("reason", "monitor_run_id", "window_start", "window_end", "drift_status", "drift_share", "check_id")
MONITOR_CHECK_KEY = "drift"  # conf key of the drift_monitor's DriftResult for the window it hands over
INFRASTRUCTURE_VARIABLES = ("mlflow_tracking_uri", "artifacts_bucket", "alert_recipients")


def infrastructure_overrides(variables: Mapping[str, str | None]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if variables.get("mlflow_tracking_uri"):
        overrides["mlflow"] = {"tracking_uri": variables["mlflow_tracking_uri"]}
    if variables.get("artifacts_bucket"):
        overrides["storage"] = {"bucket": variables["artifacts_bucket"]}
    if variables.get("alert_recipients"):  # comma-separated
        recipients = [r.strip() for r in variables["alert_recipients"].split(",") if r.strip()]
        overrides["notify"] = {"recipients": recipients}
    return overrides


def task_config(params: Mapping[str, Any]) -> PipelineConfig:
    """Defaults <- ``retrain_config`` Variable <- infrastructure Variables <- this run's Params."""
    from airflow.sdk import Variable

    variables = {name: Variable.get(name, default=None) for name in INFRASTRUCTURE_VARIABLES}
    try:
        deployment = json.loads(Variable.get("retrain_config", default=None) or "{}")
    except ValueError as error:
        raise ConfigError(f"the Variable retrain_config is not a JSON object: {error}") from error
    return load_config(deployment, infrastructure_overrides(variables), param_overrides(params))


def failure_config(params: Mapping[str, Any]) -> PipelineConfig:
    """The run's config for its failure mail; the defaults when the failure is a broken config."""
    try:
        return task_config(params)
    except (ConfigError, ValueError):
        return load_config()


def env_config(environ: Mapping[str, str] = os.environ) -> PipelineConfig:
    """The same layering for command-line tools, from ``AIRFLOW_VAR_*`` in the environment."""
    variables = {name: environ.get(f"AIRFLOW_VAR_{name.upper()}") for name in INFRASTRUCTURE_VARIABLES}
    deployment = json.loads(environ.get("AIRFLOW_VAR_RETRAIN_CONFIG") or "{}")
    return load_config(deployment, infrastructure_overrides(variables))


def run_info(context: Mapping[str, Any]) -> RunInfo:
    """Who runs and for which data: a run drift_monitor triggered ends where the monitor's window ended."""
    dag_run = context["dag_run"]
    conf = dict(dag_run.conf or {})
    end = conf.get("window_end") or (context.get("data_interval_end") or dag_run.run_after).isoformat()
    run_type = getattr(dag_run.run_type, "value", dag_run.run_type)
    return RunInfo(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        run_end=end,
        reason=str(conf.get("reason") or run_type),
        trigger={key: conf[key] for key in TRIGGER_KEYS if key in conf},
        force_retrain=bool((context.get("params") or {}).get("force_retrain")),
        monitor_check=monitor_check(conf),
    )


def monitor_check(conf: Mapping[str, Any]) -> DriftResult | None:
    if conf.get(MONITOR_CHECK_KEY) is None:
        return None
    try:
        return DriftResult.from_dict(conf[MONITOR_CHECK_KEY])
    except RecordError as error:
        raise RecordError(
            f"conf[{MONITOR_CHECK_KEY!r}] is not a drift check result ({error}): "
            "trigger with drift_monitor's conf, or leave the key out to check drift in this run"
        ) from error
