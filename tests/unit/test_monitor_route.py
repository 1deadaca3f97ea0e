"""The monitor's branch: either kind of drift alerts and retrains; no champion retrains; else it records."""

from __future__ import annotations

import pytest

from include.retraining.core.records import DriftResult, PerformanceDrift
from include.retraining.stages.monitor import route
from tests.builders import drift_result

ALERT_AND_RETRAIN, RETRAIN, RECORD = ["send_drift_alert", "retrain_conf"], ["retrain_conf"], ["record_no_drift"]


def check(status: str, performance: str | None) -> DriftResult:
    verdict = None
    if performance:
        verdict = PerformanceDrift(performance, "roc_auc", 0.8, 0.7, 0.68, 0.72, 500, "a reason").to_dict()
    return drift_result(status=status, performance=verdict)


@pytest.mark.parametrize(
    ("status", "performance", "tasks"),
    [
        ("drift", None, ALERT_AND_RETRAIN),
        ("drift", "no_drift", ALERT_AND_RETRAIN),
        ("no_drift", "drift", ALERT_AND_RETRAIN),
        ("no_drift", "no_drift", RECORD),
        ("no_drift", "undetermined", RECORD),
        ("no_reference", None, RETRAIN),
    ],
)
def test_route(status, performance, tasks):
    assert route(check(status, performance)) == tasks
