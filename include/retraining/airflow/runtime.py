"""A run's configuration, resolved once by its first task, and a running task's run identity.

Only called inside tasks (never at DAG parse time): it reads Airflow Variables through the Task SDK.
The layers, later wins: ``configs/defaults.json`` <- ``<models dir>/<model>.json`` <- Variable
``retrain_config`` (deployment-wide) <- Variable ``retrain_config_<model>`` <- the infrastructure
Variables <- the run's Params. The first task records the result and its sha256 (``ResolvedConfig``)
as its XCom; every later task rebuilds the config from that XCom, so editing a Variable mid-run changes
the next run, never the running one.
"""

from __future__ import annotations

import difflib
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
from include.retraining.core.records import RunInfo

# conf keys by which a run claims drift_monitor triggered it (``stages.monitor.retrain_conf``, plus the check itself
# an older monitor sent): such a run is that only once ``stages.monitor.honoured_trigger`` verified the check named
# by check_id in MongoDB; no value of them is ever taken from the conf
TRIGGER_KEYS = (
    "reason",
    "monitor_run_id",
    "window_start",
    "window_end",
    "drift_status",
    "drift_share",
    "performance_status",
    "check_id",
    "drift",
)
WINDOW_TASK = "extract"  # the retrain's task that reads the window: it verifies a claimed trigger, once per run
HONOURED_KEY = "honoured_trigger"  # its XCom key: the RunInfo of a run whose claimed trigger held (else none)
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


def resolve_config(model: str, context: Mapping[str, Any]) -> ResolvedConfig:
    """The run's config from every layer (see the module doc), checked in full, with its hash; a conf key
    that is neither a Param of the DAG nor the drift monitor's is refused (a misspelt Param would be
    ignored without a word, and the run would do what nobody asked)."""
    check_conf_keys(dict(context["dag_run"].conf or {}), list(context["dag"].params), context["dag_run"].dag_id)
    deployment, variables = airflow_variables(model)
    return resolved(model, layered_config(model, deployment, variables, context["params"]))


def airflow_variables(model: str) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """The deployment Variables (``retrain_config``, ``retrain_config_<model>``) and the infrastructure ones."""
    from airflow.sdk import Variable

    deployment = {name: Variable.get(name, default=None) for name in (DEPLOYMENT_VARIABLE, model_variable(model))}
    return deployment, {name: Variable.get(name, default=None) for name in INFRASTRUCTURE_VARIABLES}


def check_conf_keys(conf: Mapping[str, Any], params: list[str], dag_id: str) -> None:
    unknown = sorted(set(conf) - set(params) - set(TRIGGER_KEYS))
    if not unknown:
        return
    guesses = [f"{key!r} -> {close[0]!r}" for key in unknown if (close := difflib.get_close_matches(key, params, 1))]
    hint = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
    raise ConfigError(
        f"the run's conf has {unknown}, which {dag_id} does not take{hint}: trigger it again with its Params "
        f"{sorted(params)} only"
    )


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
    """The run's config for its failure mail and registry summary: the resolved one. When the failure is
    that it did not resolve, the closest config that does, always with the deployment's MLflow, bucket and
    recipients (the infrastructure Variables): the layers without the run's Params, then the model's file,
    then the example's."""
    try:
        return run_config(context["ti"].xcom_pull(task_ids=RESOLVE_TASK))
    except (ConfigError, ValueError):
        pass
    model = model_of(context["dag_run"].dag_id) or DEFAULT_MODEL
    deployment, infrastructure = airflow_variables(model)
    attempts = (
        lambda: layered_config(model, deployment, infrastructure),
        lambda: layered_config(model, {}, infrastructure),
        lambda: layered_config(DEFAULT_MODEL, {}, infrastructure),
    )
    for attempt in attempts:
        try:
            return attempt()
        except (ConfigError, OSError):
            continue
    return load_config()


def env_config(environ: Mapping[str, str] = os.environ, model: str = DEFAULT_MODEL) -> PipelineConfig:
    """The same layering for command-line tools, from ``AIRFLOW_VAR_*`` in the environment."""
    variables = {name: environ.get(f"AIRFLOW_VAR_{name.upper()}") for name in INFRASTRUCTURE_VARIABLES}
    names = (DEPLOYMENT_VARIABLE, model_variable(model))
    deployment = {name: environ.get(f"AIRFLOW_VAR_{name.upper()}") for name in names}
    return layered_config(model, deployment, variables, environ=environ)


def run_info(context: Mapping[str, Any]) -> RunInfo:
    """Who runs and for which data. A run whose conf claims drift_monitor triggered it is that only when the
    check it names holds (``stages.monitor.honoured_trigger``, read from MongoDB, consumed by this run): then it
    ends where the monitor's window ended. The task that reads the window decides, once; a later task reads
    its verdict. Anything else is an ordinary run of its run type (scheduled, manual...)."""
    dag_run, ti = context["dag_run"], context["ti"]
    conf = dict(dag_run.conf or {})
    run = RunInfo(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        run_end=(context.get("data_interval_end") or dag_run.run_after).isoformat(),
        reason=str(getattr(dag_run.run_type, "value", dag_run.run_type)),
        force_retrain=bool((context.get("params") or {}).get("force_retrain")),
    )
    if not any(key in conf for key in TRIGGER_KEYS):
        return run
    if ti.task_id != WINDOW_TASK:
        honoured = ti.xcom_pull(task_ids=WINDOW_TASK, key=HONOURED_KEY)
        return RunInfo.from_dict(honoured) if honoured else run
    from include.retraining.stages.monitor import honoured_trigger

    verified = honoured_trigger(run_config(ti.xcom_pull(task_ids=RESOLVE_TASK)), run, conf.get("check_id"))
    if verified != run:
        ti.xcom_push(HONOURED_KEY, verified.to_dict())
    return verified
