"""The decisions, through `airflow dags test` of a model's own DAGs, day after day (logical dates at midnight):

1. a champion from 20 stationary days (forced);
2. a day whose labels have not arrived: checked for drift (its inputs drifted), counted as unlabeled, and
   the retrain the drift asks for is skipped with the reason: no labeled row to judge a challenger on;
3. a day whose newest labels are all of one class: a forced retrain skips, naming the one-class holdout;
4. a day whose inputs look as before but whose labels follow another relation: no data drift, performance
   drift, and the retrain it triggers replaces the champion;
5. `rollback_<model>` moves the champion back.
Every assertion reads MongoDB's monitoring collection, the MLflow registry or the run's own log.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from include.demo.demo import dags_test
from include.demo.sample_data import generate_documents
from include.retraining.adapters import mongo, registry
from include.retraining.airflow.models import MODELS_DIR_ENV
from include.retraining.airflow.runtime import env_config
from include.retraining.core.config import DEFAULT_CONFIG, deep_merge
from scripts.airflow_group import isolated_overrides, seed_source

pytestmark = pytest.mark.e2e

MODEL = "decisions"
MIDNIGHT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAY = {name: MIDNIGHT - timedelta(days=back) for name, back in (("unlabeled", 2), ("one_class", 1), ("concept", 0))}


def day_bounds(name: str) -> tuple[datetime, datetime]:
    """The 24 hours before ``DAY[name]``, minus a minute at each end: the run at that date reads them all."""
    end = DAY[name]
    return end - timedelta(days=1) + timedelta(minutes=1), end - timedelta(minutes=1)


@pytest.fixture(scope="module")
def decisions(tmp_path_factory):
    missing = [n for n in ("MLFLOW_TRACKING_URI", "AIRFLOW_CONN_MONGO_DEFAULT") if n not in os.environ]
    assert not missing, f"{missing} not set: run `make up` and source .local/stack.env (make test does both)"
    # a 600-row holdout: the calibrated confidence 0.95 is for 1k+ rows (README, Calibration)
    _, overrides = isolated_overrides(
        "e2e_decisions", training={"hyperparameters": {"max_iter": 60}}, gate={"confidence": 0.9}
    )
    folder = tmp_path_factory.mktemp("models")
    (folder / f"{MODEL}.json").write_text(json.dumps(deep_merge(json.loads(DEFAULT_CONFIG.read_text()), overrides)))
    env = {**os.environ, MODELS_DIR_ENV: str(folder), "RETRAIN_TASK_RETRIES": "0"}
    config = env_config(env, model=MODEL)
    stationary_end = DAY["unlabeled"] - timedelta(days=1)
    seed_source(config, generate_documents(4000, start=stationary_end - timedelta(days=20), end=stationary_end, seed=1))
    return {"config": config, "env": env, "logs": tmp_path_factory.mktemp("dag-logs")}


def run(decisions: dict, dag_id: str, label: str, conf: dict | None = None, day: str | None = None) -> tuple[str, str]:
    log = decisions["logs"] / f"{label}.log"
    run_id, state = dags_test(
        dag_id, log, conf, env=decisions["env"], logical_date=DAY[day].isoformat() if day else None
    )
    text = log.read_text()
    assert state == "success", text[-4000:]
    return run_id, text


def check_of(config, run_id: str) -> dict:
    checks = mongo.collection(config.source.conn_id, config.monitoring_database, config.monitoring.collection)
    return checks.find_one({"run_id": run_id})


def champion(config) -> str:
    return registry.champion(config.mlflow, config.model_name).version


def test_1_a_first_champion(decisions):
    run(decisions, f"retrain_{MODEL}", "first", {"force_retrain": True}, day="unlabeled")

    assert champion(decisions["config"]) == "1"


def test_2_a_day_without_labels_is_checked_for_drift_and_the_retrain_skipped_with_the_reason(decisions):
    config = decisions["config"]
    start, end = day_bounds("unlabeled")
    docs = generate_documents(1500, start=start, end=end, seed=2, covariate_drift=1.0)  # the inputs moved
    seed_source(config, [{k: v for k, v in doc.items() if k != "Response"} for doc in docs])  # labels pending

    run_id, log = run(decisions, f"retrain_{MODEL}", "unlabeled", {"lookback_hours": 24}, day="unlabeled")

    check = check_of(config, run_id)
    assert check["rows_current"] == 1500
    assert check["windows"]["rows_unlabeled"] == 1500
    assert check["status"] == "drift"  # checked, without a single label
    assert check["performance"]["status"] == "undetermined"  # nothing labeled to score the champion on
    assert "Not retraining: data drift: " in log
    assert "but no challenger can be judged: only 0 labeled rows newer than the champion's training data" in log
    assert champion(config) == "1"


def test_3_a_one_class_holdout_ends_with_the_reason(decisions):
    config = decisions["config"]
    start, end = day_bounds("one_class")
    older = generate_documents(1500, start=start, end=end - timedelta(hours=4), seed=3)
    newest = generate_documents(400, start=end - timedelta(hours=4) + timedelta(minutes=1), end=end, seed=4)
    seed_source(config, older + [doc | {"Response": 0} for doc in newest])

    _, log = run(decisions, f"retrain_{MODEL}", "one-class", {"lookback_hours": 24, "force_retrain": True}, "one_class")

    assert "forced by the force_retrain Param, but no challenger can be judged: the out-of-time holdout" in log
    assert "hold only class ['0'] of Response: a model cannot be trained or compared on one class" in log
    assert len(registry.client(config.mlflow).search_model_versions(f"name = '{config.model_name}'")) == 1


def test_4_a_concept_only_change_retrains_through_performance_drift(decisions):
    config = decisions["config"]
    start, end = day_bounds("concept")
    seed_source(config, generate_documents(3000, start=start, end=end, seed=5, concept_drift=1.0))

    run_id, log = run(decisions, f"retrain_{MODEL}", "concept", {"lookback_hours": 24}, day="concept")

    check = check_of(config, run_id)
    assert check["status"] == "no_drift"  # the inputs look as they did
    assert check["performance"]["status"] == "drift"
    assert "Retraining because performance drift: champion roc_auc " in log
    assert champion(config) == "2"


def test_5_rollback_moves_the_champion_back(decisions):
    run(decisions, f"rollback_{MODEL}", "rollback")

    assert champion(decisions["config"]) == "1"
