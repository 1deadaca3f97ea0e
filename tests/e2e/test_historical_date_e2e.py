"""Any logical date runs: the DAGs' start date comes from the model config, so `airflow dags test` at a
date years back runs its tasks (before, a fixed start date made it succeed with zero tasks run).

A model of its own (a config file in a temporary RETRAIN_MODELS_DIR, start_date 2012-01-01) reads a
collection holding the second half of 2013: at 2013-01-01 its window holds no document and the run
says so and fails; at 2014-01-01 it trains, registers and promotes a champion, and the MLflow run
carries the config resolve_config resolved, and its sha256.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import UTC, datetime

import pytest

from include.demo.demo import dags_test
from include.demo.sample_data import generate_documents
from include.retraining.adapters import registry
from include.retraining.airflow.models import MODELS_DIR_ENV
from include.retraining.airflow.runtime import env_config
from include.retraining.core.config import DEFAULT_CONFIG, config_sha256, deep_merge
from scripts.airflow_group import isolated_overrides, seed_source

pytestmark = pytest.mark.e2e

MODEL = "history"
RETRAIN = f"retrain_{MODEL}"


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    missing = [n for n in ("MLFLOW_TRACKING_URI", "AIRFLOW_CONN_MONGO_DEFAULT") if n not in os.environ]
    assert not missing, f"{missing} not set: run `make up` and source .local/stack.env (make test does both)"
    _, overrides = isolated_overrides("e2e_history", training={"hyperparameters": {"max_iter": 60}})
    folder = tmp_path_factory.mktemp("models")
    model = deep_merge(json.loads(DEFAULT_CONFIG.read_text()), overrides) | {"start_date": "2012-01-01"}
    (folder / f"{MODEL}.json").write_text(json.dumps(model))
    env = {**os.environ, MODELS_DIR_ENV: str(folder), "RETRAIN_TASK_RETRIES": "0"}
    config = env_config(env, model=MODEL)  # the layers a run resolves: the file, then the stack's Variables
    start, end = datetime(2013, 7, 1, tzinfo=UTC), datetime(2013, 12, 31, tzinfo=UTC)
    seed_source(config, generate_documents(3000, start=start, end=end, seed=2013))
    return {"config": config, "env": env, "logs": tmp_path_factory.mktemp("dag-logs")}


def test_a_date_before_the_data_runs_its_tasks_and_says_the_window_holds_no_document(history):
    log = history["logs"] / "2013-01-01.log"

    _, state = dags_test(RETRAIN, log, env=history["env"], logical_date="2013-01-01")

    text = log.read_text()
    assert state == "failed", text[-3000:]
    assert f"config of model {MODEL} resolved: sha256" in text  # resolve_config ran
    # extract ran on the empty window: the sliding training window (90 days) before the logical date
    assert "read 0 rows (2012-10-03 00:00:00+00:00, 2013-01-01 00:00:00+00:00]" in text
    assert "DataContractError (not retried): the extract window holds no documents" in text
    assert "its documents are stamped outside the window: pick a logical date inside the data" in text


def test_a_date_after_the_data_trains_and_records_the_resolved_config(history):
    config, log = history["config"], history["logs"] / "2014-01-01.log"

    run_id, state = dags_test(RETRAIN, log, {"force_retrain": True}, env=history["env"], logical_date="2014-01-01")

    assert state == "success", log.read_text()[-3000:]
    assert registry.champion(config.mlflow, config.model_name).version == "1"
    mlflow_run = registry.client(config.mlflow).get_run(registry.find_pipeline_run(config.mlflow, run_id))
    assert mlflow_run.data.tags["config_sha256"] == config_sha256(config)
    assert f"sha256 {config_sha256(config)}" in log.read_text()  # the hash resolve_config logged and returned
    recorded = registry.read_artifact(config.mlflow, f"runs:/{mlflow_run.info.run_id}/{registry.RESOLVED_CONFIG}")
    assert json.loads(recorded) == json.loads(json.dumps(asdict(config)))
