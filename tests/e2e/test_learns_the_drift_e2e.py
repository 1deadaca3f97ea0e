"""Issue 16 end to end, at the shipped defaults: a drift-triggered retrain learns the drift.

`airflow dags test retrain_vehicle_insurance` as a subprocess on a model and collection of its own, with no
config override but the names. A history at an even rate trains the first champion at a logical date;
two days of changed inputs and labels follow at the same rate; the drift monitor's check of them (its
stage, in this process) triggers the retrain with the monitor's conf. The version that run registers
must have been fitted on rows stamped after the change began, not kept them all for the holdout.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from include.demo.demo import RETRAIN, dags_test
from include.demo.sample_data import generate_documents
from include.retraining.adapters import registry, storage
from include.retraining.airflow.runtime import env_config
from include.retraining.core.decision import MONITOR_REASON
from include.retraining.core.records import NewData, RunInfo
from include.retraining.stages import monitor
from scripts.airflow_group import isolated_overrides, seed_source

pytestmark = pytest.mark.e2e

PER_DAY = 500  # documents a day, before and after the change (two days: the monitor's 1,000)
HISTORY_DAYS, CHANGED_DAYS = 30, 2
CHANGED_ROWS = CHANGED_DAYS * PER_DAY
BOUNDS = ("training.end", "holdout.start", "fitted.end")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    missing = [n for n in ("MLFLOW_TRACKING_URI", "AIRFLOW_CONN_MONGO_DEFAULT") if n not in os.environ]
    assert not missing, f"{missing} not set: run `make up` and source .local/stack.env (make test does both)"
    _, overrides = isolated_overrides("e2e_learns")  # names only: every other setting is the shipped one
    env = {**os.environ, "AIRFLOW_VAR_RETRAIN_CONFIG": json.dumps(overrides), "RETRAIN_TASK_RETRIES": "0"}
    return {"config": env_config(env), "env": env, "logs": tmp_path_factory.mktemp("dag-logs")}


def run(model, label: str, **options) -> None:
    log = model["logs"] / f"{label}.log"
    _, state = dags_test(RETRAIN, log, env=model["env"], **options)
    assert state == "success", "\n".join(log.read_text().splitlines()[-80:])


def seed(config, days: int, end: datetime, seed: int, **knobs) -> list[dict]:
    """``days`` of documents at PER_DAY a day up to ``end``, stamped uniformly over the days."""
    docs = generate_documents(days * PER_DAY, start=end - timedelta(days=days), end=end, seed=seed, **knobs)
    seed_source(config, docs)
    return docs


def monitor_conf(config, change: datetime, changed: list[dict]) -> dict:
    """What drift_monitor hands the retrain for the window since ``change``: its check, then its conf."""
    newest = max(doc["ingested_at"] for doc in changed)
    window = NewData(count=len(changed), watermark=change.isoformat(), latest=newest.isoformat())
    monitor_run = RunInfo(
        dag_id=f"drift_monitor_{config.model_name}",
        run_id=f"monitor__{uuid.uuid4().hex[:8]}",
        run_end=newest.isoformat(),
    )
    drift = monitor.check_drift(config, monitor_run, window)
    assert monitor.route(drift) == ["send_drift_alert", "retrain_conf"], drift
    return monitor.retrain_conf(monitor_run, window, drift)


def test_a_drift_triggered_retrain_is_fitted_on_rows_after_the_change(model):
    config = model["config"]
    change = datetime.now(UTC).replace(microsecond=0) - timedelta(days=CHANGED_DAYS)
    seed(config, HISTORY_DAYS, change, seed=16)
    run(model, "first-champion", logical_date=change.isoformat())
    first = registry.champion(config.mlflow, config.model_name)
    assert first.version == "1"
    assert datetime.fromisoformat(first.training_end) <= change

    changed = seed(config, CHANGED_DAYS, datetime.now(UTC), seed=17, covariate_drift=1.0, concept_drift=1.0)
    conf = monitor_conf(config, change, changed)
    assert conf["drift_status"] == "drift", conf
    run(model, "drift-triggered", conf=conf)

    versions = registry.client(config.mlflow).search_model_versions(f"name = '{config.model_name}'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    tags = registry.version_tags(config.mlflow, config.model_name, "2")
    moment = {name: datetime.fromisoformat(tags[f"window.{name}"]) for name in BOUNDS}
    assert (tags["trigger_reason"], tags["drift_status"]) == (MONITOR_REASON, "drift")
    assert tags.get("trigger.performance_status") == conf["performance_status"]  # every flat key of the conf
    # the challenger the gate judged was trained on the older changed rows, the holdout is the newest only
    assert moment["training.end"] > change
    assert moment["holdout.start"] > moment["training.end"]
    # the version was fitted on them: the refit on every changed row when the gate passed, else the training
    assert moment["fitted.end"] > change
    fitted = storage.read_parquet(config.storage, tags["training_uri"])
    changed_fitted = int((fitted["ingested_at"] > pd.Timestamp(change)).sum())
    held_out = 0 if tags["refit"] == "true" else int(tags["window.holdout.rows"])
    assert changed_fitted == CHANGED_ROWS - held_out > 0
    run_tags = registry.client(config.mlflow).get_run(tags["mlflow_run_id"]).data.tags
    assert run_tags["window.training.end"] == tags["window.training.end"]
