"""`airflow dags test score_vehicle_insurance` as a subprocess, with the retrain DAG that feeds it.

A model and collection of its own, every other setting the shipped one. A history trains the first
champion at a logical date two days back; documents whose label has not arrived land in the last hour and
the score DAG serves them a prediction from v1, once: its second run writes nothing. Then two days of
changed inputs and labels arrive and are served by v1; the retrain's performance check judges v1 by those
served predictions, promotes v2 and emits the champion Asset the score DAG is scheduled on, and the next
score run serves the open window again, from v2.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from include.demo.demo import RETRAIN, dags_test
from include.demo.sample_data import generate_documents
from include.retraining.adapters import mongo, registry
from include.retraining.airflow.runtime import env_config
from include.retraining.stages.scoring import predictions_collection
from scripts.airflow_group import isolated_overrides, seed_source

pytestmark = pytest.mark.e2e

SCORE = "score_vehicle_insurance"
ASSET = "champion_vehicle_insurance"
PER_DAY, HISTORY_DAYS, CHANGED_DAYS, WAITING = 500, 30, 2, 300


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    missing = [n for n in ("MLFLOW_TRACKING_URI", "AIRFLOW_CONN_MONGO_DEFAULT") if n not in os.environ]
    assert not missing, f"{missing} not set: run `make up` and source .local/stack.env (make test does both)"
    name, overrides = isolated_overrides("e2e_score")  # names only: every other setting is the shipped one
    env = {
        **os.environ,
        "AIRFLOW_VAR_RETRAIN_CONFIG": json.dumps(overrides),
        "AIRFLOW_VAR_ALERT_RECIPIENTS": f"{name}@example.com",
        "RETRAIN_TASK_RETRIES": "0",
    }
    return {"config": env_config(env), "env": env, "logs": tmp_path_factory.mktemp("dag-logs")}


def run(model, dag_id: str, label: str, **options) -> str:
    log = model["logs"] / f"{label}.log"
    run_id, state = dags_test(dag_id, log, env=model["env"], **options)
    assert state == "success", "\n".join(log.read_text().splitlines()[-80:])
    model["last_log"] = log
    return run_id


def seed(config, rows: int, start: datetime, end: datetime, seed: int, labeled: bool = True, **knobs) -> list[dict]:
    docs = generate_documents(rows, start=start, end=end, seed=seed, **knobs)
    for doc in docs if not labeled else ():
        doc.pop("Response", None)
    seed_source(config, docs)
    return docs


def predictions(config) -> list[dict]:
    conn_id, database, name = predictions_collection(config)
    return list(mongo.collection(conn_id, database, name).find({"model_name": config.model_name}))


def emitted(env: dict, run_id: str) -> list[str]:
    """The Asset events run ``run_id`` of the retrain DAG left in the metadata DB `dags test` used."""
    path = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT asset.name FROM asset_event JOIN asset ON asset.id = asset_event.asset_id "
            "WHERE asset_event.source_dag_id = ? AND asset_event.source_run_id = ?",
            (RETRAIN, run_id),
        ).fetchall()
    return [name for (name,) in rows]


def scored_line(model) -> str:
    return next(line for line in model["last_log"].read_text().splitlines() if " documents stamped after " in line)


def test_the_score_dag_serves_each_champion_once_and_a_promotion_rescores_the_open_window(model):
    config, now = model["config"], datetime.now(UTC).replace(microsecond=0)
    change = now - timedelta(days=CHANGED_DAYS)
    seed(config, HISTORY_DAYS * PER_DAY, change - timedelta(days=HISTORY_DAYS), change, seed=21)
    first_run = run(model, RETRAIN, "first-champion", logical_date=change.isoformat())
    assert registry.champion(config.mlflow, config.model_name).version == "1"
    assert emitted(model["env"], first_run) == [ASSET]

    waiting = seed(config, WAITING, now - timedelta(minutes=50), now - timedelta(minutes=5), seed=22, labeled=False)
    run(model, SCORE, "score-v1")
    served = predictions(config)
    assert {doc["document_id"] for doc in served} == {str(doc["_id"]) for doc in waiting}
    assert {doc["model_version"] for doc in served} == {"1"}
    assert f"v1 scored {WAITING:,} of the {WAITING:,} documents" in scored_line(model)

    run(model, SCORE, "score-v1-again")
    assert len(predictions(config)) == WAITING
    assert f"v1 scored 0 of the {WAITING:,} documents" in scored_line(model)
    assert f"{WAITING:,} had a prediction from this version already" in scored_line(model)

    changed = CHANGED_DAYS * PER_DAY
    changed_docs = seed(config, changed, change, now - timedelta(hours=1), seed=23, covariate_drift=1, concept_drift=1)
    run(model, SCORE, "score-v1-changed")
    assert f"v1 scored {changed:,} of the {WAITING + changed:,} documents" in scored_line(model)

    second_run = run(model, RETRAIN, "drift-promotes-v2")
    # the drift check judged v1 by what it served for the changed documents, re-scoring none
    assert f"({changed:,} served predictions, 0 re-scored)" in model["last_log"].read_text()
    champion = registry.champion(config.mlflow, config.model_name)
    assert champion.version == "2"
    assert emitted(model["env"], second_run) == [ASSET]
    assert datetime.fromisoformat(champion.training_end) < now - timedelta(minutes=50)

    run(model, SCORE, "score-v2")
    by_version = {v: {d["document_id"] for d in predictions(config) if d["model_version"] == v} for v in "12"}
    waiting_ids = {str(doc["_id"]) for doc in waiting}
    assert by_version["2"] == waiting_ids  # v2 was fitted on the changed documents: only these are new to it
    assert by_version["1"] == waiting_ids | {str(doc["_id"]) for doc in changed_docs}
    assert f"v2 scored {WAITING:,} of the {WAITING:,} documents" in scored_line(model)
