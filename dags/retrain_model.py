"""Scheduled retraining: the DAG declares the flow; every step is one call into ``include.retraining``.

Parse-time cost stays near zero: the library (pandas, scikit-learn, Evidently, MLflow) is imported
inside the tasks, and nothing here reads a Variable, a connection or the network.
"""

from __future__ import annotations

import os

from airflow.sdk import Param, dag, get_current_context, task

from include.retraining.dag_defaults import START_DATE, default_args, task_setup
from include.retraining.records import (
    Decision,
    DriftResult,
    Evaluation,
    Registration,
    Snapshot,
    TrainingResult,
    ValidationReport,
)

PARAMS = {
    "force_retrain": Param(
        False,
        type="boolean",
        title="Force retrain",
        description="Train, evaluate and register even without drift.",
    ),
    "lookback_hours": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        title="Lookback (hours)",
        description="Only read documents ingested this many hours before the run's end. Empty: everything.",
    ),
    "drift_share_threshold": Param(
        None,
        type=["null", "number"],
        minimum=0,
        maximum=1,
        title="Drift share threshold",
        description="Dataset drift when at least this share of columns drifted. Empty: configured value (0.3).",
    ),
    "n_estimators": Param(
        None,
        type=["null", "integer"],
        minimum=10,
        maximum=2000,
        title="Trees",
        description="RandomForest n_estimators. Empty: configured value.",
    ),
    "max_depth": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        maximum=100,
        title="Max depth",
        description="RandomForest max_depth. Empty: configured value.",
    ),
    "min_samples_leaf": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        maximum=1000,
        title="Min samples per leaf",
        description="RandomForest min_samples_leaf. Empty: configured value.",
    ),
    "min_improvement": Param(
        None,
        type=["null", "number"],
        minimum=0,
        maximum=1,
        title="Gate margin",
        description="How much the challenger must beat the champion on the primary metric. Empty: configured value.",
    ),
}


@dag(
    dag_id="retrain_model",
    schedule=os.environ.get("RETRAIN_SCHEDULE", "0 2 * * *"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params=PARAMS,
    tags=["mlops", "retraining", "mlflow", "evidently"],
    doc_md=__doc__,
)
def retrain_model():
    @task
    def extract() -> dict:
        from include.retraining.pipeline import extract_window

        return extract_window(*task_setup()).to_dict()

    @task
    def validate(snapshot: dict) -> dict:
        from include.retraining.pipeline import validate_snapshot

        return validate_snapshot(*task_setup(), Snapshot.from_dict(snapshot)).to_dict()

    @task
    def detect_drift(report: dict) -> dict:
        from include.retraining.pipeline import detect_drift

        validated = ValidationReport.from_dict(report).snapshot
        return detect_drift(*task_setup(), validated).to_dict()

    @task.branch
    def decide(drift: dict) -> str:
        from include.retraining.pipeline import decide

        context = get_current_context()
        _, run = task_setup()
        decision = decide(run, DriftResult.from_dict(drift), context["params"]["force_retrain"])
        context["ti"].xcom_push(key="decision", value=decision.to_dict())
        return "train" if decision.retrain else "skip"

    @task
    def alert_on_drift(snapshot: dict, drift: dict) -> dict:
        from include.retraining.pipeline import MONITOR_REASON, send_drift_alert

        config, run = task_setup()
        if run.reason == MONITOR_REASON:  # the monitor already alerted on this window
            return {"sent": False, "reason": "alert already sent by drift_monitor"}
        return send_drift_alert(config, run, DriftResult.from_dict(drift), snapshot["window_start"])

    @task
    def skip(drift: dict) -> dict:
        from include.retraining.pipeline import record_skip

        config, _ = task_setup()
        decision = get_current_context()["ti"].xcom_pull(task_ids="decide", key="decision")
        return record_skip(config, DriftResult.from_dict(drift), Decision.from_dict(decision)).to_dict()

    @task(pool="training")
    def train(report: dict, drift: dict) -> dict:
        from include.retraining.pipeline import train_challenger

        data = ValidationReport.from_dict(report).snapshot
        return train_challenger(*task_setup(), data, DriftResult.from_dict(drift)).to_dict()

    @task
    def evaluate(training: dict) -> dict:
        from include.retraining.pipeline import evaluate_challenger

        config, _ = task_setup()
        return evaluate_challenger(config, TrainingResult.from_dict(training)).to_dict()

    @task
    def register(report: dict, drift: dict, training: dict, evaluation: dict) -> dict:
        from include.retraining.pipeline import register_challenger

        data = ValidationReport.from_dict(report).snapshot
        records = (DriftResult.from_dict(drift), TrainingResult.from_dict(training), Evaluation.from_dict(evaluation))
        return register_challenger(*task_setup(), data, *records).to_dict()

    @task
    def promote(registration: dict, evaluation: dict) -> dict:
        from include.retraining.pipeline import promote_if_better

        config, _ = task_setup()
        return promote_if_better(
            config, Registration.from_dict(registration), Evaluation.from_dict(evaluation)
        ).to_dict()

    @task(trigger_rule="none_failed_min_one_success")
    def notify(report: dict, drift: dict) -> dict:
        from include.retraining.pipeline import send_summary

        ti = get_current_context()["ti"]
        # evaluate/register/promote are skipped on the skip path: their XComs are then None
        records = {
            "validation": report,
            "drift": drift,
            "decision": ti.xcom_pull(task_ids="decide", key="decision"),
        }
        stages = {"evaluation": "evaluate", "registration": "register", "promotion": "promote"}
        records |= {record: ti.xcom_pull(task_ids=task_id) for record, task_id in stages.items()}
        return send_summary(*task_setup(), records)

    snapshot = extract()
    report = validate(snapshot)
    drift = detect_drift(report)
    alert_on_drift(snapshot, drift)
    branch = decide(drift)
    skipped = skip(drift)
    training = train(report, drift)
    evaluation = evaluate(training)
    registration = register(report, drift, training, evaluation)
    promotion = promote(registration, evaluation)
    branch >> [training, skipped]
    [promotion, skipped] >> notify(report, drift)


retrain_model()
