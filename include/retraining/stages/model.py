"""The model stages: train a challenger, evaluate it against the champion, register it, promote it."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

import pandas as pd

from include.retraining.adapters import airflow_api, leases, registry, storage
from include.retraining.core import windows
from include.retraining.core.approval import approval_refusal
from include.retraining.core.config import PipelineConfig
from include.retraining.core.contract import DataContractError
from include.retraining.core.evaluation import decide_promotion, predict, targets
from include.retraining.core.reasons import gate_sentence, promotion_outcome, promotion_sentence, version_description
from include.retraining.core.records import (
    Approval,
    Decision,
    DriftResult,
    Evaluation,
    Promotion,
    Registration,
    RunInfo,
    Snapshot,
    TrainingResult,
    ValidationReport,
    WindowPlan,
)
from include.retraining.core.training import features_and_label, fit_recent, label_metrics, training_sample
from include.retraining.stages.data import run_prefix

log = logging.getLogger(__name__)


def train(config: PipelineConfig, run: RunInfo, validation: ValidationReport, drift: DriftResult) -> TrainingResult:
    """Fit on the labeled rows older than the out-of-time holdout (``core.windows``), capped at
    ``training.max_rows``; the holdout is kept for the evaluation stage and the fitted rows as the drift
    reference of the version this run may register.

    A retry finds the model an earlier try logged into this run and does not fit or log another: the
    split is deterministic, so the holdout is the same rows again (checked against the recorded plan)."""
    data = validation.snapshot
    plan = planned_windows(drift)
    fitted, holdout = fitted_and_holdout(config, data.uri, plan, windows.forgets(config.training, drift.performance))
    label, source = config.contract.label.name, config.source
    prefix = run_prefix(config, run)
    columns = [source.id_field, source.timestamp_field, *config.contract.feature_names, label]
    holdout_uri = storage.write_parquet(config.storage, f"{prefix}/holdout/rows.parquet", holdout[columns])
    training_uri = storage.write_parquet(config.storage, f"{prefix}/training/rows.parquet", fitted[columns])
    params = {
        "estimator": config.training.estimator,
        **config.training.hyperparameters,
        "holdout_share": config.training.holdout_share,
        "recency_half_life_days": config.training.recency_half_life_days,
        "refit": config.training.refit,
        "seed": config.training.seed,
        "snapshot_hash": data.content_hash,
    }
    metrics = {
        "rows_train": float(len(fitted)),
        "rows_holdout": float(len(holdout)),
        **label_metrics(fitted[label], config.contract.label),
    }
    run_id = drift.mlflow_run_id
    model_uri = registry.logged_model(config.mlflow, run_id)
    if model_uri:
        log.info("this run already logged %s (an earlier try): not training again", model_uri)
    else:
        model = fit_recent(fitted, config.contract, config.training, config.source.timestamp_field)
        learn = fitted[[*config.contract.feature_names, label]]
        model_uri = registry.log_training(config.mlflow, run_id, model, learn, data, label, params, metrics)
    log.info("MLflow run: %s", registry.run_url(config.mlflow, run_id))
    return TrainingResult(
        mlflow_run_id=run_id,
        model_uri=model_uri,
        model_sha256=registry.model_digest(config.mlflow, model_uri),
        holdout_uri=holdout_uri,
        rows_train=len(fitted),
        rows_holdout=len(holdout),
        params=params,
        metrics=metrics,
        training_uri=training_uri,
        windows=plan,
    )


def refit(config: PipelineConfig, run: RunInfo, training: TrainingResult, evaluation: Evaluation) -> TrainingResult:
    """The model this run registers. When the gate passed (and ``training.refit``), the challenger is fitted
    again, same hyperparameters, on its training rows plus the holdout: the version that becomes champion
    has seen every labeled row up to the run's end, the newest included. Otherwise the challenger as trained.

    A retry finds the refit model an earlier try logged into this run and does not fit again."""
    plan = training.windows
    if not (config.training.refit and evaluation.passed) or plan is None:
        log.info("registering the challenger as trained (%s)", "gate refused" if not evaluation.passed else "no refit")
        return replace(training, windows=replace(plan, fitted=plan.training) if plan else None)
    fitted, rows = refit_rows(config, run, training)
    label = config.contract.label.name
    run_id = training.mlflow_run_id
    model_uri = registry.logged_model(config.mlflow, run_id, registry.REFIT_ARTIFACT)
    if model_uri:
        log.info("this run already logged the refit %s (an earlier try): not fitting again", model_uri)
    else:
        model = fit_recent(fitted, config.contract, config.training, config.source.timestamp_field)
        learn = fitted[[*config.contract.feature_names, label]]
        metrics = {"rows_refit": float(len(fitted))}
        model_uri = registry.log_training(
            config.mlflow, run_id, model, learn, rows, label, {}, metrics, name=registry.REFIT_ARTIFACT
        )
    log.info(
        "refit on training + holdout: %d rows (%s .. %s); the gate judged the challenger fitted on %d of them",
        rows.rows,
        rows.window_start,
        rows.window_end,
        training.rows_train,
    )
    return replace(
        training,
        model_uri=model_uri,
        model_sha256=registry.model_digest(config.mlflow, model_uri),
        training_uri=rows.uri,
        rows_train=len(fitted),
        windows=replace(plan, fitted=windows.slice_of(fitted, config.source.id_field, config.source.timestamp_field)),
        refitted=True,
    )


def refit_rows(config: PipelineConfig, run: RunInfo, training: TrainingResult) -> tuple[pd.DataFrame, Snapshot]:
    """The challenger's training rows plus the holdout, in time order, parked once next to them."""
    timestamp_field = config.source.timestamp_field
    parts = [storage.read_parquet(config.storage, uri) for uri in (training.training_uri, training.holdout_uri)]
    fitted = windows.in_time_order(pd.concat(parts, ignore_index=True), timestamp_field)
    key = f"{run_prefix(config, run)}/fitted/rows.parquet"
    return fitted, Snapshot(
        uri=storage.write_parquet(config.storage, key, fitted),
        rows=len(fitted),
        content_hash=storage.content_hash(fitted),
        window_start=fitted[timestamp_field].min().isoformat(),
        window_end=fitted[timestamp_field].max().isoformat(),
        columns=tuple(fitted.columns),
    )


def fitted_and_holdout(
    config: PipelineConfig, uri: str, plan: WindowPlan, forget: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows to fit on (the capped sample of the training slice) and the holdout; the whole window and
    the rows left out of the sample are freed on return, before the fit (1M rows: ~400 MB)."""
    frame = storage.read_parquet(config.storage, uri)
    source = config.source
    end = datetime.fromisoformat(plan.champion_training_end) if plan.champion_training_end else None
    train_rows, holdout = windows.split(frame, config.contract, config.training, source.timestamp_field, end, forget)
    if windows.slice_of(holdout, source.id_field, source.timestamp_field) != plan.holdout:
        raise RuntimeError(f"the holdout differs from the one planned by detect_drift ({plan.holdout})")
    if windows.slice_of(train_rows, source.id_field, source.timestamp_field) != plan.training:
        raise RuntimeError(f"the training rows differ from the ones planned by detect_drift ({plan.training})")
    return training_sample(train_rows, config.contract, config.training), holdout


def planned_windows(drift: DriftResult) -> WindowPlan:
    """The plan detect_drift recorded; a window the retrain DAG cannot judge never reaches training."""
    plan = drift.windows
    if plan is None:
        raise RuntimeError("detect_drift recorded no window plan for this run: clear detect_drift to plan again")
    if not plan.trainable:
        raise DataContractError(f"no challenger can be trained and judged on this window: {plan.problem}")
    return plan


def evaluate(config: PipelineConfig, training: TrainingResult) -> Evaluation:
    """Score challenger and current champion on the same holdout and apply the gate."""
    holdout = storage.read_parquet(config.storage, training.holdout_uri)
    features, y = features_and_label(holdout, config.contract)
    label = config.contract.label
    challenger = registry.load_model(config.mlflow, training.model_uri, training.model_sha256)
    champion = registry.champion(config.mlflow, config.model_name)
    champion_predictions = None
    if champion:
        champion_model = registry.load_model(config.mlflow, champion.model_uri, champion.model_sha256)
        champion_predictions = predict(champion_model, features, label)
    evaluation = decide_promotion(
        targets(label, y),
        predict(challenger, features, label),
        champion_predictions,
        champion.version if champion else None,
        config.gate,
        label.objective,
    )
    registry.log_evaluation(config.mlflow, training.mlflow_run_id, evaluation)
    log.info(gate_sentence(evaluation))
    return evaluation


def register(
    config: PipelineConfig,
    run: RunInfo,
    validation: ValidationReport,
    drift: DriftResult,
    final: TrainingResult,
    evaluation: Evaluation,
    decision: Decision,
) -> Registration:
    """A model version of ``final`` (the refit, or the challenger as trained) carrying its lineage (the rows
    it was fitted on, the holdout, the drift verdict, the run and the gate) and a one-line description of
    why it exists."""
    training = final
    data = validation.snapshot
    tags = registry.tags_as_strings(
        {
            "snapshot_uri": data.uri,
            "snapshot_hash": data.content_hash,
            "snapshot_rows": str(data.rows),
            "holdout_uri": training.holdout_uri,
            "training_uri": training.training_uri,
            "refit": str(training.refitted).lower(),  # fitted again on training + holdout after the gate
            **(registry.window_tags(training.windows) if training.windows else {}),
            "drift_status": drift.status,
            "drift_share": f"{drift.drift_share:.4f}",
            "drifted_columns": drift.drifted_column_names,
            "drift_report_uri": drift.report_uri,
            "drift_report_url": registry.artifact_url(config.mlflow, drift.report_uri) if drift.report_uri else None,
            "mlflow_run_url": registry.run_url(config.mlflow, training.mlflow_run_id),
            "airflow_dag_id": run.dag_id,
            "airflow_run_id": run.run_id,
            "airflow_run_url": airflow_api.run_url(run.dag_id, run.run_id),
            "trigger_reason": run.reason,
            **{f"trigger.{key}": value for key, value in run.trigger.items()},
            "trigger.drift_report_url": monitor_report_url(config, run),
            "mlflow_run_id": training.mlflow_run_id,
            "model_sha256": training.model_sha256,
            "previous_champion": evaluation.champion_version,
            "gate_passed": str(evaluation.passed).lower(),
            "gate_reason": evaluation.reason,
            # what performance drift compares the champion's score on newly labeled rows with
            **{f"{registry.HOLDOUT_METRIC}{name}": repr(value) for name, value in evaluation.challenger.items()},
        }
    )
    description = version_description(run, decision, evaluation)
    run_id = training.mlflow_run_id
    earlier = registry.run_version(config.mlflow, config.model_name, run_id)
    registration = registry.register(config.mlflow, config.model_name, training.model_uri, run_id, tags, description)
    if earlier:
        log.info("register: version %s was registered by an earlier try; %s", earlier, ALREADY_DONE)
    log.info("model version: %s", registry.version_url(config.mlflow, config.model_name, registration.version))
    return registration


def monitor_report_url(config: PipelineConfig, run: RunInfo) -> str | None:
    """The report of the drift_monitor check that triggered this run, if one did."""
    check = run.monitor_check
    return registry.artifact_url(config.mlflow, check.report_uri) if check and check.report_uri else None


ALREADY_DONE = "already done by this run: nothing changed"  # what a retried register or promote says

PROMOTION_LEASE_TTL = timedelta(minutes=5)  # a promotion takes seconds; a holder killed mid-way blocks no longer
PROMOTION_LEASE_WAIT = timedelta(minutes=2)


def promote(
    config: PipelineConfig, registration: Registration, evaluation: Evaluation, approval: Approval | None = None
) -> Promotion:
    """Move ``champion`` only when the gate passed against the champion that is still current, and a person
    approved where the run's config requires it (``approval``: the approve task's answer, recorded on the
    version; None in a DAG without that task). Two runs of the model (a cleared run beside a new one) check
    and move it one after the other, under the model's promotion lease, so the second sees what the first
    did and never promotes on a stale comparison: never two promotions from one champion."""
    lease = (config.source.conn_id, config.monitoring_database, config.monitoring.state_collection)
    holder = f"{config.model_name} v{registration.version}"  # its retries hold the same lease
    key = f"promotion:{config.model_name}"
    with leases.held(*lease, key, holder, PROMOTION_LEASE_TTL, PROMOTION_LEASE_WAIT):
        promotion, moved_earlier = _promotion(config, registration, evaluation, approval)
    if approval and approval.asked:
        record_approval(config, registration, approval)
    registry.append_to_description(config.mlflow, config.model_name, registration.version, promotion_outcome(promotion))
    if moved_earlier:
        log.info("promote: version %s became champion in an earlier try; %s", registration.version, ALREADY_DONE)
    else:
        log.info(promotion_sentence(registration, promotion))
    log.info("model version: %s", registry.version_url(config.mlflow, config.model_name, registration.version))
    return promotion


def record_approval(config: PipelineConfig, registration: Registration, approval: Approval) -> None:
    """The answer on the version: tags ``approval`` (its outcome) and ``approval_reason``, and its description."""
    name, version = config.model_name, registration.version
    tags = {"approval": approval.outcome, "approval_reason": approval.reason}
    registry.set_version_tags(config.mlflow, name, version, tags)
    registry.append_to_description(config.mlflow, name, version, f"Approval: {approval.reason}.")


def _promotion(
    config: PipelineConfig, registration: Registration, evaluation: Evaluation, approval: Approval | None
) -> tuple[Promotion, bool]:
    """Checked before acting: if the champion already is this version, an earlier try moved it (True)."""
    current = registry.champion(config.mlflow, config.model_name)
    current_version = current.version if current else None
    approved = f" ({approval.reason})" if approval and approval.outcome == "approved" else ""
    reason = f"version {registration.version} promoted{approved}: {evaluation.reason}"
    if evaluation.passed and current_version == registration.version:
        previous = evaluation.champion_version
        return Promotion(
            promoted=True, champion_version=current_version, previous_champion=previous, reason=reason
        ), True
    if not evaluation.passed:
        return Promotion(
            promoted=False,
            champion_version=current_version,
            previous_champion=current_version,
            reason=f"champion {_label(current_version)} unchanged: {evaluation.reason}",
        ), False
    refusal = approval_refusal(config.gate, evaluation, approval)
    if refusal:
        return Promotion(
            promoted=False,
            champion_version=current_version,
            previous_champion=current_version,
            reason=f"champion {_label(current_version)} unchanged, version {registration.version} {refusal}",
        ), False
    if current_version != evaluation.champion_version:
        return Promotion(
            promoted=False,
            champion_version=current_version,
            previous_champion=current_version,
            reason=f"champion moved to {_label(current_version)} during this run (evaluated against "
            f"{_label(evaluation.champion_version)}): not promoting on a stale comparison",
        ), False
    registry.set_champion(config.mlflow, config.model_name, registration.version, reason)
    return Promotion(
        promoted=True, champion_version=registration.version, previous_champion=current_version, reason=reason
    ), False


def _label(version: str | None) -> str:
    return f"v{version}" if version else "(none)"
