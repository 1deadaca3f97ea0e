"""The lifecycle stages, one function per Airflow task, over typed records.

Each stage reads what the previous one recorded, does one thing, and returns a small record. They
run without a scheduler: a test or a notebook can call them with a config and a ``RunInfo``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from include.retraining import drift as drift_lib
from include.retraining import mongo, notify, registry, storage
from include.retraining.config import PipelineConfig
from include.retraining.evaluation import decide_promotion, positive_scores
from include.retraining.records import (
    Decision,
    DriftResult,
    Evaluation,
    Promotion,
    Registration,
    RunInfo,
    Snapshot,
    TrainingResult,
    ValidationReport,
)
from include.retraining.training import features_and_label, fit, split_holdout
from include.retraining.validation import validate_frame

log = logging.getLogger(__name__)
MONITOR_REASON = "drift_monitor"  # the conf reason drift_monitor sets when it triggers a retrain


def _prefix(config: PipelineConfig, run: RunInfo) -> str:
    return storage.run_prefix(config.storage, config.source.collection, run.run_id)


def extract_window(config: PipelineConfig, run: RunInfo, start: datetime | None = None) -> Snapshot:
    """Read ``(start, run end]`` and park it as a content-hashed Parquet snapshot.

    Without ``start`` the window reaches back ``source.lookback_hours``, or to the beginning.
    """
    end = datetime.fromisoformat(run.run_end)
    lookback = config.source.lookback_hours
    if start is None and lookback:
        start = end - timedelta(hours=lookback)
    frame = mongo.read_window(config.source, config.contract, start, end)
    content_hash = storage.content_hash(frame)
    uri = storage.write_parquet(config.storage, f"{_prefix(config, run)}/extract/{content_hash[:16]}.parquet", frame)
    log.info("extracted %d rows (%s, %s] into %s", len(frame), start, end, uri)
    return Snapshot(
        uri=uri,
        rows=len(frame),
        content_hash=content_hash,
        window_start=start.isoformat() if start else None,
        window_end=end.isoformat(),
        columns=tuple(frame.columns),
    )


def validate_snapshot(config: PipelineConfig, run: RunInfo, snapshot: Snapshot) -> ValidationReport:
    """Apply the contract; quarantined rows are written next to the snapshot, never dropped silently."""
    frame = storage.read_parquet(config.storage, snapshot.uri)
    outcome = validate_frame(frame, config.contract, config.source.id_field)
    prefix = _prefix(config, run)
    quarantine_uri = None
    if len(outcome.quarantined):
        quarantine_uri = storage.write_parquet(config.storage, f"{prefix}/quarantine/rows.parquet", outcome.quarantined)
        log.warning(
            "quarantined %d rows to %s:\n%s",
            len(outcome.quarantined),
            quarantine_uri,
            "\n".join(outcome.problems),
        )
    content_hash = storage.content_hash(outcome.valid)
    valid_uri = storage.write_parquet(config.storage, f"{prefix}/validated/{content_hash[:16]}.parquet", outcome.valid)
    return ValidationReport(
        snapshot=replace(snapshot, uri=valid_uri, rows=len(outcome.valid), content_hash=content_hash),
        rows_in=snapshot.rows,
        rows_quarantined=len(outcome.quarantined),
        quarantine_uri=quarantine_uri,
        problems=tuple(outcome.problems),
    )


def detect_drift(config: PipelineConfig, run: RunInfo, current: Snapshot) -> DriftResult:
    """Compare ``current`` with the champion's training snapshot; record the check in MongoDB."""
    mlflow_run_id = registry.pipeline_run(config.mlflow, run)
    champion = registry.champion(config.mlflow, config.model_name)
    threshold = config.drift.drift_share_threshold
    common = {
        "threshold": threshold,
        "rows_current": current.rows,
        "current_uri": current.uri,
        "champion_version": champion.version if champion else None,
        "mlflow_run_id": mlflow_run_id,
    }
    if champion is None or not champion.snapshot_uri:
        result = DriftResult(
            status="no_reference",
            drift_share=0.0,
            drifted_columns=0,
            columns=(),
            rows_reference=0,
            reference_uri=None,
            report_uri=None,
            **common,
        )
    else:
        reference = storage.read_parquet(config.storage, champion.snapshot_uri)
        frame = storage.read_parquet(config.storage, current.uri)
        computed = drift_lib.compute_drift(frame, reference, config.contract, config.drift)
        report_uri = storage.put_bytes(
            config.storage, f"{_prefix(config, run)}/drift/report.html", computed.html.encode()
        )
        status = "drift" if drift_lib.dataset_drifted(computed.drift_share, threshold) else "no_drift"
        result = DriftResult(
            status=status,
            drift_share=computed.drift_share,
            drifted_columns=computed.drifted_columns,
            columns=computed.columns,
            rows_reference=len(reference),
            reference_uri=champion.snapshot_uri,
            report_uri=report_uri,
            **common,
        )
        registry.log_drift(config.mlflow, mlflow_run_id, result, computed.html)
    [check_id] = mongo.record_documents(
        config.source.conn_id,
        config.source.database,
        config.monitoring.collection,
        [drift_check_document(config, run, result)],
    )
    return replace(result, check_id=check_id)


def drift_check_document(config: PipelineConfig, run: RunInfo, result: DriftResult) -> dict[str, Any]:
    return {
        "checked_at": datetime.now(UTC),
        "model_name": config.model_name,
        "collection": config.source.collection,
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "window_end": run.run_end,
        **{k: v for k, v in result.to_dict().items() if k != "check_id"},
    }


def decide(run: RunInfo, result: DriftResult, force_retrain: bool) -> Decision:
    if force_retrain:
        return Decision(retrain=True, reason="forced by the force_retrain Param")
    if run.reason == MONITOR_REASON:
        window = f"{run.trigger.get('window_start')} .. {run.trigger.get('window_end')}"
        return Decision(
            retrain=True,
            reason=f"drift detected by drift_monitor run {run.trigger.get('monitor_run_id')} on window {window}",
        )
    if result.champion_version is None:
        return Decision(retrain=True, reason="no champion yet: training the first model")
    if result.status == "no_reference":
        return Decision(retrain=True, reason=f"champion v{result.champion_version} has no recorded training snapshot")
    if result.drifted:
        columns = ", ".join(result.drifted_column_names)
        return Decision(
            retrain=True,
            reason=f"data drift: {result.drifted_columns} of {len(result.columns)} columns drifted "
            f"(share {result.drift_share:.2f} >= {result.threshold}): {columns}",
        )
    return Decision(
        retrain=False,
        reason=f"no data drift (share {result.drift_share:.2f} < {result.threshold}) and champion "
        f"v{result.champion_version} is in place",
    )


def record_skip(config: PipelineConfig, result: DriftResult, decision: Decision) -> Decision:
    if result.mlflow_run_id:
        registry.client(config.mlflow).set_tag(result.mlflow_run_id, "outcome", f"skipped: {decision.reason}")
    log.info("skipping retrain: %s", decision.reason)
    return decision


def train_challenger(config: PipelineConfig, run: RunInfo, data: Snapshot, result: DriftResult) -> TrainingResult:
    """Fit on the snapshot minus a stratified holdout, which is kept for the evaluation stage."""
    frame = storage.read_parquet(config.storage, data.uri)
    model_frame = frame[[*config.contract.feature_names, config.contract.label.name]]
    train, holdout = split_holdout(model_frame, config.contract, config.training)
    holdout_uri = storage.write_parquet(config.storage, f"{_prefix(config, run)}/holdout/rows.parquet", holdout)
    model = fit(train, config.contract, config.training)
    params = {
        "estimator": config.training.estimator,
        **config.training.hyperparameters,
        "holdout_share": config.training.holdout_share,
        "seed": config.training.seed,
        "snapshot_hash": data.content_hash,
    }
    label = config.contract.label.name
    y = train[label]
    metrics = {
        "rows_train": float(len(train)),
        "rows_holdout": float(len(holdout)),
        "positive_share": float((y == config.contract.label.positive_class).mean()),
    }
    model_uri = registry.log_training(config.mlflow, result.mlflow_run_id, model, train, data, label, params, metrics)
    return TrainingResult(
        mlflow_run_id=result.mlflow_run_id,
        model_uri=model_uri,
        holdout_uri=holdout_uri,
        rows_train=len(train),
        rows_holdout=len(holdout),
        params=params,
        metrics=metrics,
    )


def evaluate_challenger(config: PipelineConfig, training: TrainingResult) -> Evaluation:
    """Score challenger and current champion on the same holdout and apply the gate."""
    holdout = storage.read_parquet(config.storage, training.holdout_uri)
    features, y = features_and_label(holdout, config.contract)
    positive = config.contract.label.positive_class
    challenger = registry.load_model(config.mlflow, training.model_uri)
    champion = registry.champion(config.mlflow, config.model_name)
    champion_scores = None
    if champion:
        champion_scores = positive_scores(registry.load_model(config.mlflow, champion.model_uri), features, positive)
    evaluation = decide_promotion(
        (y == positive).astype(int).to_numpy(),
        positive_scores(challenger, features, positive),
        champion_scores,
        champion.version if champion else None,
        config.gate,
    )
    registry.log_evaluation(config.mlflow, training.mlflow_run_id, evaluation)
    log.info("gate %s: %s", "passed" if evaluation.passed else "failed", evaluation.reason)
    return evaluation


def register_challenger(
    config: PipelineConfig,
    run: RunInfo,
    data: Snapshot,
    result: DriftResult,
    training: TrainingResult,
    evaluation: Evaluation,
) -> Registration:
    tags = registry.tags_as_strings(
        {
            "snapshot_uri": data.uri,
            "snapshot_hash": data.content_hash,
            "snapshot_rows": str(data.rows),
            "holdout_uri": training.holdout_uri,
            "drift_status": result.status,
            "drift_share": f"{result.drift_share:.4f}",
            "drifted_columns": result.drifted_column_names,
            "drift_report_uri": result.report_uri,
            "airflow_dag_id": run.dag_id,
            "airflow_run_id": run.run_id,
            "trigger_reason": run.reason,
            **{f"trigger.{key}": value for key, value in run.trigger.items()},
            "mlflow_run_id": training.mlflow_run_id,
            "previous_champion": evaluation.champion_version,
            "gate_passed": str(evaluation.passed).lower(),
            "gate_reason": evaluation.reason,
        }
    )
    return registry.register(config.mlflow, config.model_name, training.model_uri, tags)


def promote_if_better(config: PipelineConfig, registration: Registration, evaluation: Evaluation) -> Promotion:
    """Move ``champion`` only when the gate passed against the champion that is still current."""
    current = registry.champion(config.mlflow, config.model_name)
    current_version = current.version if current else None
    if not evaluation.passed:
        return Promotion(
            promoted=False,
            champion_version=current_version,
            previous_champion=current_version,
            reason=f"champion {_label(current_version)} unchanged: {evaluation.reason}",
        )
    if current_version != evaluation.champion_version:
        return Promotion(
            promoted=False,
            champion_version=current_version,
            previous_champion=current_version,
            reason=f"champion moved to {_label(current_version)} during this run (evaluated against "
            f"{_label(evaluation.champion_version)}): not promoting on a stale comparison",
        )
    reason = f"version {registration.version} promoted: {evaluation.reason}"
    registry.set_champion(config.mlflow, config.model_name, registration.version, reason)
    return Promotion(
        promoted=True, champion_version=registration.version, previous_champion=current_version, reason=reason
    )


def _label(version: str | None) -> str:
    return f"v{version}" if version else "(none)"


def send_drift_alert(
    config: PipelineConfig, run: RunInfo, result: DriftResult, window_start: str | None
) -> dict[str, Any]:
    """Email the drift alert with the Evidently report attached (the check is already recorded)."""
    if not result.drifted:
        return {"sent": False, "reason": f"no drift ({result.status})"}
    report = storage.get_bytes(config.storage, result.report_uri) if result.report_uri else None
    links = {"Report": result.report_uri or "-"}
    if result.mlflow_run_id:
        links = {"MLflow run": registry.run_url(config.mlflow, result.mlflow_run_id), **links}
    window = {"start": window_start, "end": run.run_end, "dag_id": run.dag_id, "run_id": run.run_id}
    alert = notify.render_drift_alert(config.model_name, result.to_dict(), window, links, report)
    notify.send_drift_alert(config.notify.conn_id, config.notify.recipients, alert)
    return {"sent": True, "subject": alert.subject, "recipients": list(config.notify.recipients)}


def send_summary(config: PipelineConfig, run: RunInfo, records: dict[str, Any]) -> dict[str, Any]:
    """Email what happened and why; close the MLflow run. ``records`` maps stage names to dicts."""
    drift = records["drift"]
    summary = {"model_name": config.model_name, "run": run.to_dict(), **records}
    if drift.get("mlflow_run_id"):
        summary["mlflow_run_url"] = registry.run_url(config.mlflow, drift["mlflow_run_id"])
        registry.finish_run(config.mlflow, drift["mlflow_run_id"])
    message = notify.render_summary(summary)
    notify.send(config.notify.conn_id, config.notify.recipients, message)
    return {"subject": message.subject, "recipients": list(config.notify.recipients)}
