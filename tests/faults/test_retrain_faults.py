"""The retrain DAG through Airflow's own retry path with a fault in the middle of seven calls, against a
clean run of the same data: the run must end with exactly the versions, aliases, logged models,
drift-check documents, S3 objects and mails of the clean run.

Both models get the same documents (same ids and stamps) and the same first champion; the new documents
change how the label follows the features, so the challenger beats the champion and every model stage
runs (refit, the champion alias moved). The reference runs the stages in this process, as the DAG chains
them; the fault run is `airflow dags test --use-executor` (tests/faults/airflow_runs.py) with these faults,
each striking once, in its task's first tries:

- detect_drift: MongoDB stopped after the drift report is in MLflow, before the check is recorded;
- train: S3 frozen after the holdout rows were written, before the training rows;
- train (next try): the task process killed right after the challenger was logged to MLflow, before
  anything registered it;
- refit: killed right after the refit model was logged;
- register: MLflow stopped after the model version was created, before the challenger alias was set;
- promote: killed before the champion alias was set, then (next try) right after it was set.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from scripts.airflow_group import seed_source
from tests.faults.airflow_runs import Plan
from tests.faults.conftest import RETRAIN_DAG, Stack, config_of, documents, manual_run, model_overrides, run_stages
from tests.faults.end_state import end_state

pytestmark = [
    pytest.mark.faults,
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning"),
]

FAULTS = [
    {"task": "detect_drift", "point": "before_drift_check_recorded", "action": "outage", "service": "mongo"},
    {"task": "train", "point": "before_training_rows_written", "action": "outage", "service": "s3"},
    {"task": "train", "point": "after_log_model", "action": "kill"},
    {"task": "refit", "point": "after_log_refit", "action": "kill"},
    {"task": "register", "point": "before_challenger_alias", "action": "outage", "service": "mlflow"},
    {"task": "promote", "point": "before_champion_alias", "action": "kill"},
    {"task": "promote", "point": "after_champion_alias", "action": "kill"},
]
FIRST, REFERENCE = "faults__first_champion", "faults__reference"  # run ids of the runs in this process
RETRIED = {"detect_drift": 1, "train": 2, "refit": 1, "register": 1, "promote": 2}  # failed tries per task


def test_faults_mid_call_end_as_one_clean_run(fault_airflow, fault_env, stack: Stack, tmp_path):
    end = datetime.now(UTC).replace(microsecond=0)
    docs, first_end = documents(end)
    models = {role: model_overrides(f"faults_{role}") for role in ("reference", "fault")}
    configs = {role: config_of(overrides) for role, overrides in models.items()}
    for config in configs.values():
        seed_source(config, copy.deepcopy(docs))
        run_stages(config, manual_run(FIRST, first_end))

    records = run_stages(configs["reference"], manual_run(REFERENCE, end))
    assert records["promote"].promoted, f"the reference run did not promote: {records['promote'].reason}"
    plan = Plan(tmp_path, FAULTS, stack)
    run = fault_airflow.run(
        RETRAIN_DAG, models["fault"], plan, logical_date=end.isoformat(), conf={"force_retrain": True}
    )

    assert run.state == "success", run.explain()
    assert plan.missed() == [], f"faults that never struck: {plan.missed()}\n{run.explain()}"
    assert run.retried == RETRIED, run.explain()
    assert all(error not in ("survived", "never ended") for error in plan.errors.values()), plan.errors
    reference = end_state(configs["reference"], {"first": FIRST, "retrain": REFERENCE})
    faulted = end_state(configs["fault"], {"first": FIRST, "retrain": run.run_id})
    assert faulted == reference
