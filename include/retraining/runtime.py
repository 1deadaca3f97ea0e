"""Glue between a running Airflow task and the library: config and run identity.

Only called inside tasks (never at DAG parse time): it reads Airflow Variables through the Task SDK.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from include.retraining.config import PipelineConfig, load_config
from include.retraining.records import RunInfo

# Param name -> (config section, key); hyperparameters go one level deeper.
PARAM_TARGETS = {
    "lookback_hours": ("source", "lookback_hours"),
    "drift_share_threshold": ("drift", "drift_share_threshold"),
    "min_improvement": ("gate", "min_improvement"),
    "n_estimators": ("training", "hyperparameters", "n_estimators"),
    "max_depth": ("training", "hyperparameters", "max_depth"),
    "min_samples_leaf": ("training", "hyperparameters", "min_samples_leaf"),
}
# conf keys a triggering DAG (drift_monitor) may pass; they end up in MLflow and model-version tags
TRIGGER_KEYS = ("reason", "monitor_run_id", "window_start", "window_end", "drift_status", "drift_share", "check_id")
INFRASTRUCTURE_VARIABLES = ("mlflow_tracking_uri", "artifacts_bucket", "alert_recipients")


def param_overrides(params: Mapping[str, Any]) -> dict[str, Any]:
    """Params left empty (None) keep the configured value."""
    overrides: dict[str, Any] = {}
    for name, path in PARAM_TARGETS.items():
        if params.get(name) is None:
            continue
        node = overrides
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = params[name]
    return overrides


def infrastructure_overrides(variables: Mapping[str, str | None]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if variables.get("mlflow_tracking_uri"):
        overrides["mlflow"] = {"tracking_uri": variables["mlflow_tracking_uri"]}
    if variables.get("artifacts_bucket"):
        overrides["storage"] = {"bucket": variables["artifacts_bucket"]}
    if variables.get("alert_recipients"):  # comma-separated; the failure emails read the same Variable
        recipients = [r.strip() for r in variables["alert_recipients"].split(",") if r.strip()]
        overrides["notify"] = {"recipients": recipients}
    return overrides


def task_config(params: Mapping[str, Any]) -> PipelineConfig:
    """Defaults <- ``retrain_config`` Variable <- infrastructure Variables <- this run's Params."""
    from airflow.sdk import Variable

    variables = {name: Variable.get(name, default=None) for name in INFRASTRUCTURE_VARIABLES}
    deployment = json.loads(Variable.get("retrain_config", default=None) or "{}")
    return load_config(deployment, infrastructure_overrides(variables), param_overrides(params))


def env_config(environ: Mapping[str, str] = os.environ) -> PipelineConfig:
    """The same layering for command-line tools, from ``AIRFLOW_VAR_*`` in the environment."""
    variables = {name: environ.get(f"AIRFLOW_VAR_{name.upper()}") for name in INFRASTRUCTURE_VARIABLES}
    deployment = json.loads(environ.get("AIRFLOW_VAR_RETRAIN_CONFIG") or "{}")
    return load_config(deployment, infrastructure_overrides(variables))


def run_info(context: Mapping[str, Any]) -> RunInfo:
    dag_run = context["dag_run"]
    end = context.get("data_interval_end") or dag_run.run_after
    conf = dict(dag_run.conf or {})
    run_type = getattr(dag_run.run_type, "value", dag_run.run_type)
    reason = str(conf.get("reason") or run_type)
    trigger = {key: conf[key] for key in TRIGGER_KEYS if key in conf}
    return RunInfo(
        dag_id=dag_run.dag_id, run_id=dag_run.run_id, run_end=end.isoformat(), reason=reason, trigger=trigger
    )
