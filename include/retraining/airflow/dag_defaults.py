"""What every DAG of the project shares: owner, retries, timeouts and the task-failure email.

Imported at DAG parse time, so it stays light: the standard library only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)


def mail_task_failure(context: Mapping[str, Any]) -> None:
    """Task-level failure callback: mails the run's configured recipients through its configured SMTP
    connection (a DAG-level callback breaks `dags test`, apache/airflow#64649). Never raises: the task
    already failed, a broken mail must not hide why."""
    from include.retraining.adapters import airflow_api, mail
    from include.retraining.airflow.runtime import failure_config
    from include.retraining.stages.outcome import run_outcome

    ti, dag_run = context["ti"], context["dag_run"]
    airflow_api.set_run_note(dag_run.dag_id, dag_run.run_id, failure_note(ti.task_id, ti.try_number, context))
    try:
        config = failure_config(context)
        try:
            outcome = run_outcome(config, dag_run.run_id)
        except Exception as error:  # the registry may be what failed
            outcome = f"What this run did to the model registry is unknown: it could not be read ({error})."
        error = context.get("exception")
        run = (dag_run.dag_id, dag_run.run_id)
        message = mail.render_failure(*run, ti.task_id, ti.try_number, error, outcome, airflow_api.run_url(*run))
        mail.send(config.notify.conn_id, config.notify.recipients, message)
    except Exception:
        log.exception("could not mail the failure of %s", ti.task_id)


def failure_note(task_id: str, try_number: int, context: Mapping[str, Any]) -> str:
    """The run's note when a task failed: the task, the try and the error on one line."""
    error = context.get("exception")
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    return f"Failed at {task_id} (try {try_number}): {message}"


def dag_defaults(start_date: str) -> dict[str, Any]:
    """The ``@dag`` arguments every DAG shares: one run at a time, no backfill, the task defaults.

    ``start_date`` (the model config's ISO date) is fixed and past: with catchup=False only the latest
    interval runs, and @continuous needs one (without it the first run gets a zero-length data interval
    and the scheduler re-proposes that logical date forever). No logical date before it runs any task."""
    start = datetime.combine(date.fromisoformat(start_date), datetime.min.time(), tzinfo=UTC)
    return {"start_date": start, "catchup": False, "max_active_runs": 1, "default_args": default_args()}


def default_args(**overrides: Any) -> dict[str, Any]:
    return {
        "owner": "ml-platform",
        # the e2e tests set RETRAIN_TASK_RETRIES=0: under `dags test` a retry sleeps in-process
        "retries": int(os.environ.get("RETRAIN_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": mail_task_failure,
        **overrides,
    }
