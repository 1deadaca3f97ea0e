"""What every DAG of the project shares: owner, retries, timeouts and the task-failure email.

Imported at DAG parse time, so it stays light: Airflow's SDK and the SMTP notifier only.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)  # with catchup=False only the latest interval runs

# The same Variable feeds the run summaries and drift alerts (runtime.infrastructure_overrides).
RECIPIENTS = "{{ var.value.get('alert_recipients', 'ml-team@example.com') }}"

FAILURE_EMAIL = SmtpNotifier(
    to=RECIPIENTS,
    smtp_conn_id="smtp_default",
    subject="[retrain] task {{ ti.task_id }} failed in {{ dag.dag_id }} / {{ run_id }}",
    html_content=(
        "<p>Task <b>{{ ti.task_id }}</b> of <code>{{ dag.dag_id }}</code> run <code>{{ run_id }}</code> failed "
        "(try {{ ti.try_number }}).</p><p>{{ exception }}</p>"
        "<p>No model was registered and the champion was not moved by this run.</p>"
    ),
)


def default_args(**overrides: Any) -> dict[str, Any]:
    return {
        "owner": "ml-platform",
        # the e2e tests set RETRAIN_TASK_RETRIES=0: under `dags test` a retry sleeps in-process
        "retries": int(os.environ.get("RETRAIN_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
        "execution_timeout": timedelta(minutes=30),
        # task-level, not DAG-level: a DAG-level SmtpNotifier breaks `dags test` (apache/airflow#64649)
        "on_failure_callback": FAILURE_EMAIL,
        **overrides,
    }


def task_setup():
    """Config and run identity of the running task (call inside a task only)."""
    from airflow.sdk import get_current_context

    from include.retraining.runtime import run_info, task_config

    context = get_current_context()
    return task_config(context["params"]), run_info(context)
