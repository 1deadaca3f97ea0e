"""``gate.approval: required`` in a model's file puts approval_request and Airflow's ApprovalOperator between
register and promote; the example model (automatic) keeps its DAG as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from include.retraining.airflow.models import MODELS_DIR_ENV
from include.retraining.core.config import DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dags(tmp_path_factory):
    from airflow.dag_processing.dagbag import DagBag

    folder = tmp_path_factory.mktemp("models")
    shutil.copy(DEFAULT_CONFIG, folder)
    config = json.loads(DEFAULT_CONFIG.read_text())
    config["gate"] = config.get("gate", {}) | {"approval": "required", "approval_timeout_hours": 2}
    (folder / "approved.json").write_text(json.dumps(config | {"model_name": "approved"}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MODELS_DIR_ENV, str(folder))
        bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags


def test_a_required_approval_sits_between_register_and_promote(dags):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    tasks = dags["retrain_approved"].task_dict
    approve = tasks["approve"]

    assert isinstance(approve, ApprovalOperator)
    assert tasks["approval_request"].upstream_task_ids >= {"register", "evaluate", "detect_drift"}
    assert approve.upstream_task_ids == {"approval_request"}
    assert "approve" in tasks["promote"].upstream_task_ids
    assert approve.defaults == ["Reject"]  # no answer before the timeout: the scheduler answers Reject
    assert approve.response_timeout.total_seconds() == 2 * 3600  # the file's, until the run's replaces it
    assert approve.retries >= 1
    assert approve.owner == "ml-platform"


def test_an_automatic_model_has_no_approval_step(dags):
    tasks = dags["retrain_vehicle_insurance"].task_dict

    assert not {"approval_request", "approve"} & set(tasks)
    assert tasks["promote"].upstream_task_ids == {"resolve_config", "register", "evaluate"}
