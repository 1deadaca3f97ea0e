"""A run's configuration, resolved once by its first task, and a running task's run identity.

Only called inside tasks (never at DAG parse time): it reads Airflow Variables through the Task SDK.
The layers, later wins: ``configs/defaults.json`` <- ``<models dir>/<model>.json`` <- Variable
``retrain_config`` (deployment-wide) <- Variable ``retrain_config_<model>`` <- the infrastructure
Variables <- the run's Params. The first task records the result and its sha256 (``ResolvedConfig``)
as its XCom; every later task rebuilds the config from that XCom, so editing a Variable mid-run changes
the next run, never the running one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from include.retraining.airflow.models import model_of, model_path
from include.retraining.airflow.params import param_overrides
from include.retraining.core.config import (
    DEFAULT_MODEL,
    ConfigError,
    PipelineConfig,
    ResolvedConfig,
    load_config,
    resolved,
)
from include.retraining.core.records import DriftResult, RecordError, RunInfo

# conf keys a triggering DAG (drift_monitor: every flat key of its retrain_conf) may pass; they end up in MLflow
# and model-version tags, and the decision reads them
TRIGGER_KEYS = (
    "reason",
    "monitor_run_id",
    "window_start",
    "window_end",
    "drift_status",
    "drift_share",
    "performance_status",
    "check_id",
)
MONITOR_CHECK_KEY = "drift"  # conf key of the drift_monitor's DriftResult for the window it hands over
INFRASTRUCTURE_VARIABLES = ("mlflow_tracking_uri", "artifacts_bucket", "alert_recipients")
DEPLOYMENT_VARIABLE = "retrain_config"
RESOLVE_TASK = "resolve_config"  # the first task of every DAG; its XCom is the run's ResolvedConfig


def model_variable(model: str) -> str:
    """The per-model override Variable, layered after ``retrain_config``."""
    return f"{DEPLOYMENT_VARIABLE}_{model}"


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


def resolve_config(model: str, params: Mapping[str, Any]) -> ResolvedConfig:
    """The run's config from every layer (see the module doc), checked in full, with its hash."""
    from airflow.sdk import Variable

    variables = {name: Variable.get(name, default=None) for name in INFRASTRUCTURE_VARIABLES}
    deployment = {name: Variable.get(name, default=None) for name in (DEPLOYMENT_VARIABLE, model_variable(model))}
    return resolved(model, layered_config(model, deployment, variables, params))


def layered_config(
    model: str,
    deployment: Mapping[str, str | None],
    variables: Mapping[str, str | None],
    params: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> PipelineConfig:
    """The model file <- the deployment Variables (by name, JSON text) <- the infrastructure ones <- Params."""
    layers = [json_variable(name, deployment.get(name)) for name in (DEPLOYMENT_VARIABLE, model_variable(model))]
    path = model_path(model, environ)
    if not path.exists():
        raise ConfigError(f"model {model!r}: no config file {path}: restore it, or set RETRAIN_MODELS_DIR")
    return load_config(*layers, infrastructure_overrides(variables), param_overrides(params or {}), base=path)


def json_variable(name: str, text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError as error:
        raise ConfigError(f"the Variable {name} is not valid JSON ({error}): fix it in Admin > Variables") from error
    if not isinstance(value, dict):
        raise ConfigError(f"the Variable {name} holds a {type(value).__name__}, not a JSON object: fix it")
    return value


def run_config(record: Mapping[str, Any] | None) -> PipelineConfig:
    """The config the run's first task resolved, rebuilt from its XCom (its hash checked)."""
    if record is None:
        raise ConfigError(f"no resolved config in this run: the task {RESOLVE_TASK} did not run or returned nothing")
    return ResolvedConfig.from_dict(record).config


def failure_config(context: Mapping[str, Any]) -> PipelineConfig:
    """The run's config for its failure mail: the resolved one; when the failure is that it did not
    resolve, the model's file alone; when that is what is broken, the example's (same mail defaults)."""
    try:
        return run_config(context["ti"].xcom_pull(task_ids=RESOLVE_TASK))
    except (ConfigError, ValueError):
        pass
    model = model_of(context["dag_run"].dag_id)
    try:
        return load_config(base=model_path(model)) if model else load_config()
    except (ConfigError, OSError):
        return load_config()


def env_config(environ: Mapping[str, str] = os.environ, model: str = DEFAULT_MODEL) -> PipelineConfig:
    """The same layering for command-line tools, from ``AIRFLOW_VAR_*`` in the environment."""
    variables = {name: environ.get(f"AIRFLOW_VAR_{name.upper()}") for name in INFRASTRUCTURE_VARIABLES}
    names = (DEPLOYMENT_VARIABLE, model_variable(model))
    deployment = {name: environ.get(f"AIRFLOW_VAR_{name.upper()}") for name in names}
    return layered_config(model, deployment, variables, environ=environ)


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
