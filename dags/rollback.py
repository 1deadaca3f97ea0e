"""Rollback, one ``rollback_<model>`` DAG per model config: move the model's ``champion`` alias back to
the version the current champion replaced.

Triggered by hand only (UI "Trigger", `airflow dags test rollback_<model>`, or `make rollback`). The
previous champion gets the tags ``rolled_back_from`` / ``rolled_back_by``, the demoted one
``rolled_back_at``, and a mail says what moved. With no champion, or one that replaced none, the run
fails at once with the reason and nothing moves.
"""

from __future__ import annotations

from airflow.sdk import dag

from include.retraining.airflow.dag_defaults import dag_defaults
from include.retraining.airflow.models import Model, dag_id, models
from include.retraining.airflow.task import stage_tasks
from include.retraining.core.graph import ROLLBACK


def rollback_dag(model: Model):
    @dag(
        dag_id=dag_id("rollback", model.id),
        schedule=None,
        **dag_defaults(model.config.start_date),
        tags=["mlops", "rollback", "mlflow", model.id],
        doc_md=__doc__,
    )
    def roll_back():
        tasks = stage_tasks(ROLLBACK, model.id)
        tasks.rollback(tasks.resolve_config())

    return roll_back()


for _model in models():
    rollback_dag(_model)
