"""A retrain run that claims drift_monitor triggered it is that only when the drift check it names holds:
the rules of ``stages.monitor.refusal`` over stored check documents, and what a verified check hands the run."""

from __future__ import annotations

import pytest
from bson import ObjectId

from include.retraining.core.records import PerformanceDrift, RunInfo
from include.retraining.stages.data import drift_check_document, stored_check
from include.retraining.stages.monitor import CONSUMED_BY, monitor_trigger, refusal
from tests.builders import drift_result

MODEL, RUN = "vehicle_insurance", "manual__2026-12-06T10:00:00+00:00"
CHECK_ID = str(ObjectId())
WORSE = PerformanceDrift("drift", "roc_auc", 0.8, 0.6, 0.58, 0.62, 500, "worse on the new labels").to_dict()


def document(**changes) -> dict:
    """A drift check the monitor recorded against champion v3 (data drift), as stored in MongoDB."""
    from include.retraining.core.config import load_config

    config = load_config({"model_name": MODEL})
    monitor_run = RunInfo(dag_id=f"drift_monitor_{MODEL}", run_id="monitor__1", run_end="2026-12-06T09:00:00+00:00")
    stored = drift_check_document(config, monitor_run, drift_result(status="drift", drift_share=0.5))
    extra = {"current": {"rows": 1000}, "future_documents": 0, "window_start": "2026-12-05T09:00:00+00:00"}
    return {"_id": ObjectId(CHECK_ID), **stored, **extra, **changes}


@pytest.mark.parametrize(
    ("stored", "champion", "why"),
    [
        (None, "3", f"no drift check {CHECK_ID!r} exists"),
        (document(model_name="wine"), "3", f"drift check {CHECK_ID} belongs to model 'wine', not 'vehicle_insurance'"),
        (
            document(dag_id=f"retrain_{MODEL}"),
            "3",
            f"drift check {CHECK_ID} was made by retrain_vehicle_insurance, not by a drift monitor",
        ),
        (
            document(**{CONSUMED_BY: "drift_monitor__other"}),
            "3",
            f"drift check {CHECK_ID} was already consumed by run drift_monitor__other",
        ),
        (document(), "4", f"drift check {CHECK_ID} is older than champion v4: it compared champion v3"),
        (document(), None, f"drift check {CHECK_ID} compared champion v3, and there is no champion now"),
        (document(status="no_drift"), "3", f"drift check {CHECK_ID} found no_drift: nothing the monitor retrains for"),
        (
            document(status="no_new_data"),
            "3",
            f"drift check {CHECK_ID} found no_new_data: nothing the monitor retrains for",
        ),
    ],
    ids=[
        "no-such-check",
        "another-model",
        "not-the-monitors",
        "consumed",
        "older",
        "champion-gone",
        "no-drift",
        "no-data",
    ],
)
def test_a_check_that_does_not_hold_is_refused_with_the_reason(stored, champion, why):
    assert refusal(CHECK_ID, stored, MODEL, RUN, champion) == why


def test_a_conf_without_a_check_id_names_what_is_missing():
    assert refusal("", None, MODEL, RUN, "3") == "the conf names no check_id"


@pytest.mark.parametrize(
    ("stored", "champion"),
    [
        (document(), "3"),
        (document(status="no_drift", performance=WORSE), "3"),  # performance drift retrains too
        (document(status="no_reference", champion_version=None), None),  # no champion yet: train the first
        (document(**{CONSUMED_BY: RUN}), "4"),  # a retry of the run that consumed it, though it promoted since
    ],
    ids=["data-drift", "performance-drift", "first-champion", "own-retry"],
)
def test_a_check_that_holds_is_honoured(stored, champion):
    assert refusal(CHECK_ID, stored, MODEL, RUN, champion) is None


def test_the_run_is_handed_the_stored_check_and_its_lineage_never_the_conf():
    stored = document(performance=WORSE)

    drift = stored_check(stored)
    trigger = monitor_trigger(CHECK_ID, stored)

    assert drift == drift_result(status="drift", drift_share=0.5, performance=WORSE, check_id=CHECK_ID)
    assert trigger == {
        "reason": "drift_monitor",
        "monitor_run_id": "monitor__1",
        "window_start": "2026-12-05T09:00:00+00:00",
        "window_end": "2026-12-06T09:00:00+00:00",
        "drift_status": "drift",
        "drift_share": 0.5,
        "performance_status": "drift",
        "check_id": CHECK_ID,
    }
