"""Scheduled retraining: the DAG declares the flow; every task is one call into ``include.retraining.stages``.

    extract -> validate -> detect_drift -> decide -> retrain_or_skip -> train -> evaluate -> register -> promote
                                      |                                 `-> skip ------------------------------> notify
                                      `-> alert_on_drift

Parse-time cost stays near zero: the library (pandas, scikit-learn, Evidently, MLflow) is imported
inside the tasks, and nothing here reads a Variable, a connection or the network.
"""

from __future__ import annotations

import os

from airflow.sdk import dag, task

from include.retraining.airflow.dag_defaults import dag_defaults
from include.retraining.airflow.params import dag_params
from include.retraining.airflow.task import run_stage


@dag(
    dag_id="retrain_model",
    schedule=os.environ.get("RETRAIN_SCHEDULE", "0 2 * * *"),
    **dag_defaults(),
    params=dag_params(),
    tags=["mlops", "retraining", "mlflow", "evidently"],
    doc_md=__doc__,
)
def retrain_model():
    @task
    def extract() -> dict:
        return run_stage("extract")

    @task
    def validate(snapshot: dict) -> dict:
        return run_stage("validate", snapshot=snapshot)

    @task
    def detect_drift(validation: dict) -> dict:
        return run_stage("detect_drift", validation=validation)

    @task
    def alert_on_drift(validation: dict, drift: dict) -> dict:
        return run_stage("alert_on_drift", validation=validation, drift=drift)

    @task
    def decide(drift: dict) -> dict:
        return run_stage("decide", drift=drift)

    @task.branch
    def retrain_or_skip(decision: dict) -> str:
        return "train" if decision["retrain"] else "skip"

    @task
    def skip(drift: dict, decision: dict) -> dict:
        return run_stage("skip", drift=drift, decision=decision)

    @task(pool="training")
    def train(validation: dict, drift: dict) -> dict:
        return run_stage("train", validation=validation, drift=drift)

    @task
    def evaluate(training: dict) -> dict:
        return run_stage("evaluate", training=training)

    @task
    def register(validation: dict, drift: dict, training: dict, evaluation: dict) -> dict:
        return run_stage("register", validation=validation, drift=drift, training=training, evaluation=evaluation)

    @task
    def promote(registration: dict, evaluation: dict) -> dict:
        return run_stage("promote", registration=registration, evaluation=evaluation)

    # evaluate/register/promote are skipped on the skip path: their XComs are then None
    @task(trigger_rule="none_failed_min_one_success")
    def notify(validation, drift, decision, evaluation, registration, promotion) -> dict:
        return run_stage(
            "notify",
            validation=validation,
            drift=drift,
            decision=decision,
            evaluation=evaluation,
            registration=registration,
            promotion=promotion,
        )

    validation = validate(extract())
    drift = detect_drift(validation)
    alert_on_drift(validation, drift)
    decision = decide(drift)
    skipped = skip(drift, decision)
    training = train(validation, drift)
    evaluation = evaluate(training)
    registration = register(validation, drift, training, evaluation)
    promotion = promote(registration, evaluation)
    retrain_or_skip(decision) >> [training, skipped]
    skipped >> notify(validation, drift, decision, evaluation, registration, promotion)


retrain_model()
