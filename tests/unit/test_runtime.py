"""Glue between a running task and the library: Params and Variables become config, the context a RunInfo."""

from __future__ import annotations

import enum
import json
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.retraining import stages
from include.retraining.airflow.models import MODELS_DIR_ENV
from include.retraining.airflow.params import param_overrides
from include.retraining.airflow.runtime import (
    HONOURED_KEY,
    RESOLVE_TASK,
    WINDOW_TASK,
    env_config,
    failure_config,
    infrastructure_overrides,
    layered_config,
    run_config,
    run_info,
)
from include.retraining.airflow.task import resolve_run_config, run_stage
from include.retraining.core.config import DEFAULT_CONFIG, ConfigError, PipelineConfig, load_config, resolved
from include.retraining.core.graph import Graph, Stage
from include.retraining.core.records import RunInfo
from tests.unit.test_task_adapter import example_params


class RunType(enum.Enum):  # shaped like airflow's DagRunType
    MANUAL = "manual"
    SCHEDULED = "scheduled"


def test_empty_params_change_nothing():
    params = dict.fromkeys(("lookback_hours", "false_alarm_rate", "max_iter", "max_depth"))
    assert param_overrides({"force_retrain": True, **params}) == {}
    assert param_overrides({}) == {}


def test_params_land_in_their_sections():
    overrides = param_overrides(
        {
            "force_retrain": False,  # not a config value
            "lookback_hours": 48,
            "false_alarm_rate": 0.05,
            "min_improvement": 0.02,
            "max_iter": 50,
            "max_depth": None,
            "min_samples_leaf": 3,
        }
    )

    assert overrides == {
        "source": {"lookback_hours": 48},
        "drift": {"false_alarm_rate": 0.05},
        "gate": {"min_improvement": 0.02},
        "training": {"hyperparameters": {"max_iter": 50, "min_samples_leaf": 3}},
    }


def test_zero_is_a_value_not_an_empty_param():
    assert param_overrides({"min_improvement": 0.0}) == {"gate": {"min_improvement": 0.0}}


def test_hyperparameter_params_merge_into_the_configured_ones():
    config = load_config(param_overrides({"max_iter": 50, "lookback_hours": 6}))

    assert config.training.hyperparameters == {
        "max_iter": 50,
        "learning_rate": 0.05,
        "max_depth": 4,
        "min_samples_leaf": 50,
        "early_stopping": True,
        "class_weight": "balanced",
    }
    assert config.source.lookback_hours == 6


def test_out_of_range_param_is_a_config_error():
    with pytest.raises(ConfigError, match=r"drift\.false_alarm_rate"):
        load_config(param_overrides({"false_alarm_rate": 1.5}))


def test_infrastructure_overrides():
    assert infrastructure_overrides({}) == {}
    assert (
        infrastructure_overrides({"mlflow_tracking_uri": None, "artifacts_bucket": "", "alert_recipients": None}) == {}
    )
    assert infrastructure_overrides(
        {
            "mlflow_tracking_uri": "http://mlflow:5000",
            "artifacts_bucket": "models",
            "alert_recipients": " a@x.io, ,b@x.io ",
        }
    ) == {
        "mlflow": {"tracking_uri": "http://mlflow:5000"},
        "storage": {"bucket": "models"},
        "notify": {"recipients": ["a@x.io", "b@x.io"]},
    }


def test_env_config_layers_variables_from_the_environment():
    environ = {
        "AIRFLOW_VAR_RETRAIN_CONFIG": json.dumps(
            {"source": {"collection": "policies"}, "storage": {"bucket": "from-json"}}
        ),
        "AIRFLOW_VAR_ARTIFACTS_BUCKET": "from-variable",
        "AIRFLOW_VAR_MLFLOW_TRACKING_URI": "http://127.0.0.1:5555",
        "AIRFLOW_VAR_ALERT_RECIPIENTS": "ops@example.com",
    }

    config = env_config(environ)

    assert config.source.collection == "policies"
    assert config.storage.bucket == "from-variable"  # the infrastructure Variable wins over retrain_config
    assert config.mlflow.tracking_uri == "http://127.0.0.1:5555"
    assert config.notify.recipients == ("ops@example.com",)


def test_env_config_without_variables_is_the_default():
    assert env_config({}) == load_config()


def test_the_model_variable_is_layered_after_the_deployment_one_and_before_infrastructure_and_params():
    deployment = {
        "retrain_config": json.dumps({"source": {"collection": "deployment", "lookback_hours": 12}}),
        "retrain_config_vehicle_insurance": json.dumps({"source": {"collection": "model"}, "storage": {"bucket": "m"}}),
        "retrain_config_other_model": json.dumps({"source": {"collection": "not this model's"}}),
    }

    config = layered_config("vehicle_insurance", deployment, {"artifacts_bucket": "infra"}, {"lookback_hours": 3})

    assert config.source.collection == "model"  # the model's Variable wins over retrain_config
    assert config.storage.bucket == "infra"  # the infrastructure Variable wins over both
    assert config.source.lookback_hours == 3  # the run's Param wins over everything


def test_a_model_variable_that_is_no_json_object_is_named():
    with pytest.raises(ConfigError, match="the Variable retrain_config_vehicle_insurance holds a list"):
        layered_config("vehicle_insurance", {"retrain_config_vehicle_insurance": "[1]"}, {})
    with pytest.raises(ConfigError, match="the Variable retrain_config is not valid JSON"):
        layered_config("vehicle_insurance", {"retrain_config": "{source"}, {})


def test_a_model_without_its_file_names_the_file_and_the_folder_setting(tmp_path):
    with pytest.raises(ConfigError, match=r"model 'gone': no config file .*gone\.json: restore it, or set RETRAIN"):
        layered_config("gone", {}, {}, environ={MODELS_DIR_ENV: str(tmp_path)})


def test_the_models_folder_comes_from_the_environment(tmp_path):
    (tmp_path / "vehicle_insurance.json").write_text(
        json.dumps(json.loads(DEFAULT_CONFIG.read_text()) | {"model_name": "from_the_temp_folder"})
    )

    assert env_config({MODELS_DIR_ENV: str(tmp_path)}).model_name == "from_the_temp_folder"


def collection_of(config: PipelineConfig) -> str:
    return config.source.collection


class TaskInstance:
    """Keeps the XComs of one run like the Task SDK's ``ti`` (by task id and key, as JSON)."""

    def __init__(self, task_id: str = "a_task"):
        self.task_id = task_id
        self.xcoms: dict[tuple[str, str], str] = {}

    def push(self, task_id: str, value, key: str = "return_value") -> None:
        self.xcoms[task_id, key] = json.dumps(value)

    def xcom_pull(self, task_ids: str, key: str = "return_value"):
        return json.loads(self.xcoms[task_ids, key]) if (task_ids, key) in self.xcoms else None


def test_a_variable_edited_mid_run_does_not_change_a_later_task_of_that_run(monkeypatch):
    """The real task code paths: resolve_run_config reads the Variable (Task SDK, from the environment),
    a later task's run_stage rebuilds the config from the first task's XCom it is handed."""
    variable = "AIRFLOW_VAR_RETRAIN_CONFIG_VEHICLE_INSURANCE"
    ti = TaskInstance()
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: task_context(ti))
    monkeypatch.setattr(stages, "collection_of", collection_of, raising=False)  # a stage that shows its config

    monkeypatch.setenv(variable, json.dumps({"source": {"collection": "before_the_edit"}}))
    ti.push(RESOLVE_TASK, resolve_run_config("vehicle_insurance"))
    monkeypatch.setenv(variable, json.dumps({"source": {"collection": "after_the_edit"}}))  # mid-run

    later = run_stage(Graph((Stage("collection_of"),)), "collection_of", ti.xcom_pull(RESOLVE_TASK), {})
    assert later == "before_the_edit"
    assert resolve_run_config("vehicle_insurance")["config"]["source"]["collection"] == "after_the_edit"  # next run


def task_context(ti, conf=None) -> dict:
    """What resolve_run_config reads of a running task's context: the retrain DAG's declared Params."""
    dag_run = SimpleNamespace(dag_id="retrain_vehicle_insurance", conf=conf or {})
    declared = example_params()
    return {"params": {name: param.value for name, param in declared.items()} | (conf or {}), "ti": ti,
            "dag_run": dag_run, "dag": SimpleNamespace(params=declared)}  # fmt: skip


def test_a_misspelt_param_in_the_conf_is_refused_with_the_params(monkeypatch):
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: task_context(TaskInstance(), {"lookback_days": 3}))

    with pytest.raises(AirflowFailException) as raised:  # the first task, not retried
        resolve_run_config("vehicle_insurance")

    message = str(raised.value)
    assert "the run's conf has ['lookback_days'], which retrain_vehicle_insurance does not take" in message
    assert "(did you mean 'lookback_days' -> 'lookback_hours'?)" in message
    assert f"its Params {sorted(example_params())} only" in message


def test_the_monitors_conf_keys_are_not_refused(monkeypatch):
    conf = {"reason": "drift_monitor", "check_id": "abc", "monitor_run_id": "m1"}
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: task_context(TaskInstance(), conf))

    assert resolve_run_config("vehicle_insurance")["model"] == "vehicle_insurance"


def test_a_task_without_a_resolved_config_names_the_first_task():
    with pytest.raises(ConfigError, match="the task resolve_config did not run"):
        run_config(None)


def test_the_failure_mail_uses_the_runs_resolved_config_else_the_models_file(monkeypatch, tmp_path):
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    own = json.loads(DEFAULT_CONFIG.read_text()) | {"model_name": "wine", "notify": {"recipients": ["w@x.io"]}}
    (tmp_path / "wine.json").write_text(json.dumps(own))
    ti = TaskInstance()
    failed = {"ti": ti, "dag_run": SimpleNamespace(dag_id="retrain_wine")}

    assert failure_config(failed).notify.recipients == ("w@x.io",)  # resolve_config failed: the model's file
    ti.push(RESOLVE_TASK, {"model": "wine", "sha256": "", "config": {}})  # not what resolve_config returns
    assert failure_config(failed).model_name == "wine"

    configured = load_config({"notify": {"recipients": ["owner@example.com"]}})
    ti.push(RESOLVE_TASK, resolved("vehicle_insurance", configured).to_dict())
    assert failure_config(failed).notify.recipients == ("owner@example.com",)  # the run's own config

    (tmp_path / "wine.json").write_text("{broken")
    assert failure_config({"ti": TaskInstance(), "dag_run": failed["dag_run"]}) == load_config()


def test_a_config_that_did_not_resolve_still_fails_towards_the_deployments_mlflow(monkeypatch):
    """A broken retrain_config: the failure mail reads the registry the deployment uses, not defaults.json's."""
    monkeypatch.setenv("AIRFLOW_VAR_RETRAIN_CONFIG", json.dumps({"drift": {"max_row": 10}}))
    monkeypatch.setenv("AIRFLOW_VAR_MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("AIRFLOW_VAR_ALERT_RECIPIENTS", "oncall@example.com")
    failed = {"ti": TaskInstance(), "dag_run": SimpleNamespace(dag_id="retrain_vehicle_insurance")}

    config = failure_config(failed)

    assert config.mlflow.tracking_uri == "http://mlflow.internal:5000"
    assert config.notify.recipients == ("oncall@example.com",)
    assert config.model_name == load_config().model_name


def context(conf=None, run_type=RunType.MANUAL, interval_end=None, params=None, ti=None) -> dict:
    dag_run = SimpleNamespace(
        dag_id="retrain_vehicle_insurance",
        run_id="manual__2024-05-01T10:00:00+00:00",
        conf=conf,
        run_type=run_type,
        run_after=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
    )
    return {"dag_run": dag_run, "data_interval_end": interval_end, "params": params or {}, "ti": ti or TaskInstance()}


def test_run_info_of_a_manual_run_without_data_interval():
    run = run_info(context())

    assert run == RunInfo(
        dag_id="retrain_vehicle_insurance",
        run_id="manual__2024-05-01T10:00:00+00:00",
        run_end="2024-05-01T10:00:00+00:00",
        reason="manual",
        trigger={},
    )


def test_run_info_prefers_the_data_interval_end():
    run = run_info(context(run_type=RunType.SCHEDULED, interval_end=datetime(2024, 5, 1, 2, 0, tzinfo=UTC)))

    assert run.run_end == "2024-05-01T02:00:00+00:00"
    assert run.reason == "scheduled"
    assert datetime.fromisoformat(run.run_end).tzinfo is not None


def forged_conf() -> dict:
    """What anyone allowed to trigger the DAG over REST can send: the monitor's conf, made up."""
    from tests.builders import drift_result

    return {
        "reason": "drift_monitor",
        "monitor_run_id": "drift_monitor__1",
        "window_start": "2024-04-30T10:00:00+00:00",
        "window_end": "2024-04-01T10:00:00+00:00",
        "drift_status": "drift",
        "check_id": "made-up",
        "drift": drift_result(status="drift").to_dict(),
    }


def test_a_later_task_takes_no_value_of_a_claimed_trigger_from_the_conf():
    """Without the window task's verdict (it refused the claim, or never ran) the run is an ordinary one."""
    ti = TaskInstance("decide")

    run = run_info(context(conf=forged_conf(), ti=ti))

    assert run == run_info(context())
    assert (run.reason, run.trigger, run.monitor_check) == ("manual", {}, None)
    assert run.run_end == "2024-05-01T10:00:00+00:00"  # the trigger time, not the conf's window_end


def test_a_later_task_takes_the_run_the_window_task_verified():
    from tests.builders import drift_result

    verified = replace(
        run_info(context()),
        reason="drift_monitor",
        run_end="2024-05-01T09:00:00+00:00",
        trigger={"reason": "drift_monitor", "check_id": "c1"},
        monitor_check=drift_result(check_id="c1"),
    )
    ti = TaskInstance("register")
    ti.push(WINDOW_TASK, verified.to_dict(), key=HONOURED_KEY)

    assert run_info(context(conf=forged_conf(), ti=ti)) == verified


def test_a_conf_that_claims_nothing_is_never_checked():
    """No claim: no MongoDB, no MLflow (the window task would need the resolved config to look)."""
    params = {"force_retrain": True, "max_iter": 50}
    run = run_info(context(conf=params, params=params, ti=TaskInstance(WINDOW_TASK)))

    assert (run.reason, run.trigger, run.force_retrain) == ("manual", {}, True)


def test_run_info_accepts_a_plain_string_run_type():
    assert run_info(context(run_type="asset_triggered")).reason == "asset_triggered"
