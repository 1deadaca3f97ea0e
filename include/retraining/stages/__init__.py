"""The stages: one function per Airflow task, composing the core and the adapters over typed records.

Each function is named like its task and its stage in ``core.graph``, whose records it takes by their
names, so the task adapter finds it here. They run without a scheduler: a test or a notebook calls them
with a config, a ``RunInfo`` and the records.
"""

from include.retraining.stages.approval import approval_request
from include.retraining.stages.data import detect_drift, extract, validate
from include.retraining.stages.model import evaluate, promote, refit, register, train
from include.retraining.stages.monitor import (
    advance_watermark,
    check_drift,
    open_window,
    record_no_drift,
    retrain_conf,
    route,
    send_drift_alert,
)
from include.retraining.stages.outcome import alert_on_drift, decide, notify, skip
from include.retraining.stages.rollback import rollback
from include.retraining.stages.scoring import score

__all__ = [
    "advance_watermark",
    "alert_on_drift",
    "approval_request",
    "check_drift",
    "decide",
    "detect_drift",
    "evaluate",
    "extract",
    "notify",
    "open_window",
    "promote",
    "record_no_drift",
    "refit",
    "register",
    "retrain_conf",
    "rollback",
    "route",
    "score",
    "send_drift_alert",
    "skip",
    "train",
    "validate",
]
