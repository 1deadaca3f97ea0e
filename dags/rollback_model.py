"""Rollback: move the ``champion`` alias back to the version the current champion replaced.

Triggered by hand only (UI "Trigger", `airflow dags test rollback_model`, or `make rollback`). The
previous champion gets the tags ``rolled_back_from`` / ``rolled_back_by``, the demoted one
``rolled_back_at``, and a mail says what moved. With no champion, or one that replaced none, the run
fails at once with the reason and nothing moves.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from include.retraining.airflow.dag_defaults import dag_defaults
from include.retraining.airflow.task import run_stage


@dag(
    dag_id="rollback_model",
    schedule=None,
    **dag_defaults(),
    tags=["mlops", "rollback", "mlflow"],
    doc_md=__doc__,
)
def rollback_model():
    @task
    def rollback() -> dict:
        return run_stage("rollback")

    rollback()


rollback_model()
