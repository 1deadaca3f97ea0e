"""Scheduled retraining, one ``retrain_<model>`` DAG per model config: the DAG declares the flow; every
task is one call into ``include.retraining``.

    resolve_config -> extract -> validate -> detect_drift -> decide -> retrain_or_skip
                                        |                       |-> train -> evaluate -> refit -> register -> promote
                                        `-> alert_on_drift      `-> skip        (both paths end in notify)

``resolve_config`` resolves the model's layered config once (file <- Variables <- Params) and returns it
with its sha256; every later task reads that XCom, so a Variable edited mid-run changes the next run only.
Parse-time cost stays near zero: the library (pandas, scikit-learn, Evidently, MLflow) is imported
inside the tasks, and nothing here reads a Variable, a connection or the network.
"""

from __future__ import annotations

import os

from airflow.sdk import dag, task

from include.retraining.airflow.dag_defaults import dag_defaults
from include.retraining.airflow.models import Model, dag_id, models
from include.retraining.airflow.params import dag_params
from include.retraining.airflow.task import resolve_run_config, run_stage


def retrain_dag(model: Model):
    @dag(
        dag_id=dag_id("retrain", model.id),
        schedule=os.environ.get("RETRAIN_SCHEDULE", "0 2 * * *"),
        **dag_defaults(model.config.start_date),
        params=dag_params(model.merged, model.path.name),
        tags=["mlops", "retraining", "mlflow", "evidently", model.id],
        doc_md=__doc__,
    )
    def retrain():
        # Each task is handed the record of the task before it; the other records its stage needs (and the
        # run's config) are pulled by run_stage from the tasks that produce them (all upstream), so the graph
        # draws the lifecycle.
        @task
        def resolve_config() -> dict:
            return resolve_run_config(model.id)

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
        def alert_on_drift(drift: dict) -> dict:
            return run_stage("alert_on_drift", drift=drift)

        @task
        def decide(drift: dict) -> dict:
            return run_stage("decide", drift=drift)

        @task.branch
        def retrain_or_skip(decision: dict) -> str:
            return "train" if decision["retrain"] else "skip"

        @task
        def skip() -> dict:
            return run_stage("skip")

        @task(pool="training")
        def train() -> dict:
            return run_stage("train")

        @task
        def evaluate(training: dict) -> dict:
            return run_stage("evaluate", training=training)

        @task(pool="training")
        def refit(evaluation: dict) -> dict:
            return run_stage("refit", evaluation=evaluation)

        @task
        def register(final: dict) -> dict:
            return run_stage("register", final=final)

        @task
        def promote(registration: dict) -> dict:
            return run_stage("promote", registration=registration)

        # on the skip path train..promote are skipped: their records are then None
        @task(trigger_rule="none_failed_min_one_success")
        def notify() -> dict:
            return run_stage("notify")

        drift = detect_drift(validate(resolve_config() >> extract()))
        alert_on_drift(drift)
        training, skipped = train(), skip()
        retrain_or_skip(decide(drift)) >> [training, skipped]
        [promote(register(refit(evaluate(training)))), skipped] >> notify()

    return retrain()


for _model in models():
    retrain_dag(_model)
