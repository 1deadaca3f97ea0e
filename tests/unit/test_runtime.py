"""Glue between a running task and the library: Params and Variables become config, the context a RunInfo."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from include.retraining import stages
from include.retraining.airflow.models import MODELS_DIR_ENV
from include.retraining.airflow.params import param_overrides
from include.retraining.airflow.runtime import (
    RESOLVE_TASK,
    env_config,
    failure_config,
    infrastructure_overrides,
    layered_config,
    run_config,
    run_info,
)
from include.retraining.airflow.task import resolve_run_config, run_stage
from include.retraining.core.config import DEFAULT_CONFIG, ConfigError, PipelineConfig, load_config, resolved
from include.retraining.core.records import RunInfo


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
    """Keeps the XComs of one run like the Task SDK's ``ti`` (by task id, as JSON)."""

    def __init__(self):
        self.xcoms: dict[str, str] = {}

    def push(self, task_id: str, value) -> None:
        self.xcoms[task_id] = json.dumps(value)

    def xcom_pull(self, task_ids: str):
        return json.loads(self.xcoms[task_ids]) if task_ids in self.xcoms else None


def test_a_variable_edited_mid_run_does_not_change_a_later_task_of_that_run(monkeypatch):
    """The real task code paths: resolve_run_config reads the Variable (Task SDK, from the environment),
    a later task's run_stage rebuilds the config from the first task's XCom."""
    variable = "AIRFLOW_VAR_RETRAIN_CONFIG_VEHICLE_INSURANCE"
    ti = TaskInstance()
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: {"params": {}, "ti": ti})
    monkeypatch.setattr(stages, "collection_of", collection_of, raising=False)  # a stage that shows its config

    monkeypatch.setenv(variable, json.dumps({"source": {"collection": "before_the_edit"}}))
    ti.push(RESOLVE_TASK, resolve_run_config("vehicle_insurance"))
    monkeypatch.setenv(variable, json.dumps({"source": {"collection": "after_the_edit"}}))  # mid-run

    assert run_stage("collection_of") == "before_the_edit"
    assert resolve_run_config("vehicle_insurance")["config"]["source"]["collection"] == "after_the_edit"  # next run


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


def context(conf=None, run_type=RunType.MANUAL, interval_end=None, params=None) -> dict:
    dag_run = SimpleNamespace(
        dag_id="retrain_vehicle_insurance",
        run_id="manual__2024-05-01T10:00:00+00:00",
        conf=conf,
        run_type=run_type,
        run_after=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
    )
    return {"dag_run": dag_run, "data_interval_end": interval_end, "params": params or {}}


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


def test_run_info_takes_reason_and_trigger_from_conf():
    conf = {
        "reason": "drift_monitor",
        "monitor_run_id": "drift_monitor__1",
        "window_start": "2024-04-30T10:00:00+00:00",
        "window_end": "2024-05-01T10:00:00+00:00",
        "unrelated": "ignored",
    }

    run = run_info(context(conf=conf))

    assert run.run_end == conf["window_end"]  # the monitor's window, not the trigger time
    assert run.reason == "drift_monitor"
    assert run.trigger == {key: conf[key] for key in ("reason", "monitor_run_id", "window_start", "window_end")}
    assert RunInfo.from_dict(json.loads(json.dumps(run.to_dict()))) == run


def test_every_flat_key_of_the_monitors_conf_reaches_the_retrain_and_its_decision():
    """What drift_monitor hands over (``retrain_conf``) is what the retrain decides on: a key dropped here
    makes a retrain for performance drift name it as mere "drift" and ignore ``drift.retrain_on``."""
    from include.retraining.core.decision import decide_retrain
    from include.retraining.core.records import NewData, PerformanceDrift
    from tests.builders import drift_result

    worse = PerformanceDrift("drift", "roc_auc", 0.8, 0.6, 0.58, 0.62, 500, "worse on the new labels")
    drift = drift_result(status="no_drift", performance=worse.to_dict(), check_id="check-1")
    monitor_run = RunInfo(dag_id="drift_monitor_m", run_id="drift_monitor__1", run_end="2024-05-01T10:00:00+00:00")
    window = NewData(count=1_000, watermark="2024-04-30T10:00:00+00:00", latest="2024-05-01T10:00:00+00:00")
    conf = json.loads(json.dumps(stages.retrain_conf(monitor_run, window, drift)))  # as the trigger stores it

    run = run_info(context(conf=conf))

    assert run.trigger == {key: value for key, value in conf.items() if key != "drift"}
    assert decide_retrain(run, run.monitor_check).reason.startswith(
        "performance drift detected by drift_monitor run drift_monitor__1"
    )


def test_run_info_accepts_a_plain_string_run_type():
    assert run_info(context(run_type="asset_triggered")).reason == "asset_triggered"


def test_run_info_carries_the_force_param_and_the_monitors_check():
    from tests.unit.test_records import DRIFT

    run = run_info(context(conf={"reason": "drift_monitor", "drift": DRIFT.to_dict()}, params={"force_retrain": True}))

    assert run.force_retrain is True
    assert run.monitor_check == DRIFT


def test_a_malformed_monitor_check_in_conf_names_the_key_and_the_fix():
    with pytest.raises(ValueError, match=r"conf\['drift'\] is not a drift check result .*leave the key out"):
        run_info(context(conf={"drift": {"status": "drift"}}))
