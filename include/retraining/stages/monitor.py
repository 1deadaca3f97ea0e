"""The drift monitor's stages: the watermark, the window check, and handing over to the retrain.

The hand-over is checked, not trusted: the monitor's conf names its drift-check document (``check_id``);
the retrain reads the check from MongoDB and acts on it only if it is this model's monitor's, calls for
a retrain, was made against the current champion and no other run consumed it (``honoured_trigger``).

The watermark is a state document in MongoDB. A window is ``(watermark, latest]`` where ``latest``
is the newest timestamp the sensor saw; the watermark moves to ``latest`` only after the window
was handled (recorded, alerted, retrain triggered), by compare-and-set, so a window is never
skipped or counted twice, and a restart picks up where the last handled window ended.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from include.retraining.adapters import mongo, registry
from include.retraining.core.config import PipelineConfig
from include.retraining.core.decision import MONITOR_REASON
from include.retraining.core.records import DriftResult, NewData, RunInfo
from include.retraining.stages.data import check_drift as drift_check
from include.retraining.stages.data import log_links, read_window, stored_check, validated
from include.retraining.stages.outcome import mail_drift_alert

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MONITOR_DAG_PREFIX = "drift_monitor_"  # the checks the monitor records carry its dag id: drift_monitor_<model>
CONSUMED_BY = "consumed_by"  # the field of a drift check that names the retrain run which acted on it
log = logging.getLogger(__name__)


def watermark_key(config: PipelineConfig) -> str:
    source = config.source
    return f"{config.model_name}:{source.database}.{source.collection}.{source.timestamp_field}"


def open_window(config: PipelineConfig, run: RunInfo) -> dict[str, Any]:
    """The current watermark (initialised to the newest document on first use) and what the sensor needs."""
    key, state, database = watermark_key(config), config.monitoring.state_collection, config.monitoring_database
    watermark = mongo.read_watermark(config.source, state, key, database)
    if watermark is None:  # start at the newest document, but never past what has settled
        settled = datetime.now(UTC) - timedelta(seconds=config.monitoring.grace_seconds)
        start = min(mongo.latest_timestamp(config.source) or EPOCH, settled)
        note = {"initialised_by": run.run_id}
        mongo.advance_watermark(config.source, state, key, None, start, note, database)
        watermark = mongo.read_watermark(config.source, state, key, database)
    return {
        "watermark": watermark.isoformat(),
        "min_documents": config.monitoring.min_new_documents,
        "grace_seconds": config.monitoring.grace_seconds,
        "database": config.source.database,
        "collection": config.source.collection,
        "timestamp_field": config.source.timestamp_field,
        "timestamp_type": config.source.timestamp_type,
    }


def window_run(run: RunInfo, new_data: NewData) -> RunInfo:
    """The monitor run, seen as a pipeline run whose data ends at the newest new document."""
    trigger = {"window_start": new_data.watermark, "window_end": new_data.latest}
    return replace(run, run_end=new_data.latest, trigger=trigger)


def check_drift(config: PipelineConfig, run: RunInfo, new_data: NewData) -> DriftResult:
    """Extract, validate and drift-check the new documents against the champion's training data, in memory:
    one validated snapshot is written, nothing is read back."""
    window_of = window_run(run, new_data)
    window = read_window(config, window_of, start=datetime.fromisoformat(new_data.watermark))
    frame, report = validated(config, window_of, window, for_training=False)  # a drift check, not a training set
    if new_data.future:
        log.warning("%d documents are stamped beyond now + grace: left for a later window", new_data.future)
    mlflow_run_id = registry.pipeline_run(config, window_of)
    extra = {"future_documents": new_data.future, "window_start": new_data.watermark}
    champion = registry.champion(config.mlflow, config.model_name)
    result = drift_check(config, window_of, frame, report.snapshot, mlflow_run_id, champion, extra, planned=False)
    registry.finish_run(config.mlflow, mlflow_run_id)
    log_links(config, result)
    return result


def send_drift_alert(config: PipelineConfig, run: RunInfo, new_data: NewData, drift: DriftResult) -> dict:
    return mail_drift_alert(config, window_run(run, new_data), drift, new_data.watermark)


# what the monitor does with a check -> the tasks that do it; no champion yet: the retrain trains the first one
ROUTES = {"alarm": ["send_drift_alert", "retrain_conf"], "no_reference": ["retrain_conf"]}


def route(drift: DriftResult) -> list[str]:
    """Data drift or performance drift: alert and retrain; no champion: retrain; otherwise record."""
    key = "alarm" if drift.alarm else drift.status
    return ROUTES.get(key, ["record_no_drift"])


def retrain_conf(run: RunInfo, new_data: NewData, drift: DriftResult) -> dict[str, Any]:
    """The conf the model's ``retrain_<model>`` receives: ``check_id`` names the check it reads from MongoDB and
    reuses instead of checking again; the window and verdict are there for a person reading the run's conf
    in the UI (the retrain takes them from the stored check, never from here)."""
    return {
        "reason": MONITOR_REASON,
        "monitor_run_id": run.run_id,
        "check_id": drift.check_id,
        "window_start": new_data.watermark,
        "window_end": new_data.latest,
        "drift_status": drift.status,
        "performance_status": drift.performance.status if drift.performance else None,
    }


def honoured_trigger(config: PipelineConfig, run: RunInfo, check_id: Any) -> RunInfo:
    """``run`` as triggered by drift check ``check_id`` when the check holds (``refusal``), marked consumed by
    this run (once: a retry of the run finds its own mark); otherwise ``run`` as it is, an ordinary run, and
    one warning saying why the claimed trigger was not honoured."""
    checks = (config.source.conn_id, config.monitoring_database, config.monitoring.collection)
    check_id = str(check_id or "")
    document = mongo.find_document(*checks, check_id) if check_id else None
    champion = registry.champion(config.mlflow, config.model_name)
    why = refusal(check_id, document, config.model_name, run.run_id, champion.version if champion else None)
    if (
        why is None
        and document.get(CONSUMED_BY) != run.run_id
        and not mongo.mark_once(*checks, check_id, CONSUMED_BY, run.run_id)
    ):  # another run consumed it since it was read
        why = f"drift check {check_id} was already consumed by run {mongo.field_of(*checks, check_id, CONSUMED_BY)}"
    if why:
        log.warning(
            "the conf claims a drift_monitor trigger, not honoured: %s; this is an ordinary %s run", why, run.reason
        )
        return run
    log.info("triggered by drift check %s of drift_monitor run %s (read from MongoDB)", check_id, document["run_id"])
    return replace(
        run,
        run_end=document["window_end"],
        reason=MONITOR_REASON,
        trigger=monitor_trigger(check_id, document),
        monitor_check=stored_check(document),
    )


def refusal(
    check_id: str, document: Mapping[str, Any] | None, model: str, run_id: str, champion_version: str | None
) -> str | None:
    """Why a retrain run may not act as triggered by drift check ``check_id`` (None: it may). The check must be
    the drift monitor's for this model and call for a retrain (``route``); a run that consumed it already (a
    retry) may act on it again, any other only while no run consumed it and it compared the current champion."""
    if document is None:
        return f"no drift check {check_id!r} exists" if check_id else "the conf names no check_id"
    if document.get("model_name") != model:
        return f"drift check {check_id} belongs to model {document.get('model_name')!r}, not {model!r}"
    if not str(document.get("dag_id")).startswith(MONITOR_DAG_PREFIX):
        return f"drift check {check_id} was made by {document.get('dag_id')}, not by a drift monitor"
    consumer = document.get(CONSUMED_BY)
    if consumer == run_id:
        return None
    if consumer:
        return f"drift check {check_id} was already consumed by run {consumer}"
    if document.get("champion_version") != champion_version:
        compared = version_label(document.get("champion_version"))
        if champion_version is None:
            return f"drift check {check_id} compared {compared}, and there is no champion now"
        return f"drift check {check_id} is older than champion v{champion_version}: it compared {compared}"
    drift = stored_check(document)
    if "retrain_conf" not in route(drift):
        return f"drift check {check_id} found {drift.status}: nothing the monitor retrains for"
    return None


def version_label(version: str | None) -> str:
    return f"champion v{version}" if version else "no champion"


def monitor_trigger(check_id: str, document: Mapping[str, Any]) -> dict[str, Any]:
    """The trigger.* lineage of a verified check: every value from the stored check."""
    performance = document.get("performance") or {}
    return {
        "reason": MONITOR_REASON,
        "monitor_run_id": document["run_id"],
        "window_start": document.get("window_start"),
        "window_end": document["window_end"],
        "drift_status": document["status"],
        "drift_share": round(document["drift_share"], 4),
        "performance_status": performance.get("status"),
        "check_id": check_id,
    }


def record_no_drift(drift: DriftResult) -> str:
    performance = f"; performance {drift.performance.status}" if drift.performance else ""
    return f"no drift: share {drift.drift_share:.2f} < {drift.threshold}{performance}; check {drift.check_id}"


def advance_watermark(config: PipelineConfig, run: RunInfo, new_data: NewData, drift: DriftResult) -> dict[str, Any]:
    note = {"advanced_by": run.run_id, "advanced_at": datetime.now(UTC), "last_check_id": drift.check_id}
    mongo.advance_watermark(
        config.source,
        config.monitoring.state_collection,
        watermark_key(config),
        datetime.fromisoformat(new_data.watermark),
        datetime.fromisoformat(new_data.latest),
        note,
        config.monitoring_database,
    )
    return {"from": new_data.watermark, "to": new_data.latest}
