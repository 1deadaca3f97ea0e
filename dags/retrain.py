"""Scheduled retraining, one ``retrain_<model>`` DAG per model config: the DAG declares the flow; every
task is one call into ``include.retraining``.

    resolve_config -> extract -> validate -> detect_drift -> decide -> retrain_or_skip
                                        |                       |-> train -> evaluate -> refit -> register -> promote
                                        `-> alert_on_drift      `-> skip        (both paths end in notify)

With ``gate.approval: "required"`` in the model's file, register -> approval_request -> approve -> promote:
a person approves a challenger the gate passed (Airflow's ApprovalOperator); Reject or no answer keeps
the champion, and promote says why.

That is the lifecycle; each task is also handed, as an XCom argument, every record its stage takes from
the tasks further back (``register`` takes the validation, the drift check, the refit, the evaluation and
the decision), as ``include.retraining.core.graph.RETRAIN`` declares. ``resolve_config`` resolves the
model's layered config once (file <- Variables <- Params) and returns it with its sha256; every later task
is handed that XCom, so a Variable edited mid-run changes the next run only.
Parse-time cost stays near zero: the library (pandas, scikit-learn, Evidently, MLflow) is imported
inside the tasks, and nothing here reads a Variable, a connection or the network.
"""

from __future__ import annotations

import os

from airflow.sdk import dag, task

from include.retraining.airflow.dag_defaults import dag_defaults
from include.retraining.airflow.models import Model, dag_id, models
from include.retraining.airflow.params import dag_params
from include.retraining.airflow.task import stage_tasks
from include.retraining.core.graph import RETRAIN, RETRAIN_WITH_APPROVAL


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
        # Every task is handed the run's config and each record its stage takes, from the task that makes it
        # (checked against core.graph.RETRAIN as the DAG is parsed), so the graph view draws what feeds what.
        # the shape follows the model's file: the approval step only where gate.approval is required
        approval = model.config.gate.approval == "required"
        tasks = stage_tasks(RETRAIN_WITH_APPROVAL if approval else RETRAIN, model.id)

        @task.branch
        def retrain_or_skip(decision: dict) -> str:
            return "train" if decision["retrain"] else "skip"

        config = tasks.resolve_config()
        snapshot = tasks.extract(config)
        validation = tasks.validate(config, snapshot)
        drift = tasks.detect_drift(config, validation)
        tasks.alert_on_drift(config, validation, drift)
        decision = tasks.decide(config, drift)
        training, skipped = tasks.train(config, validation, drift), tasks.skip(config, drift, decision)
        retrain_or_skip(decision) >> [training, skipped]
        evaluation = tasks.evaluate(config, training)
        final = tasks.refit(config, training, evaluation)
        registration = tasks.register(config, validation, drift, final, evaluation, decision)
        if approval:
            from include.retraining.airflow.approval import approve

            request = tasks.approval_request(config, drift, evaluation, registration)
            answer = approve(request, model.config.gate.approval_timeout_hours)
            promotion = tasks.promote(config, registration, evaluation, answer)
        else:
            promotion = tasks.promote(config, registration, evaluation)
        # on the skip path train..promote are skipped, and notify is handed None for their records
        skipped >> tasks.notify(config, validation, drift, decision, evaluation, registration, promotion)

    return retrain()


for _model in models():
    retrain_dag(_model)
