"""The Airflow REST API, for the one thing a task cannot do through the Task SDK in Airflow 3.3: set the
note of its own run, which the UI shows in the run list and on the run's page; and the address of that page.

Airflow 3.3's execution API reads a run's note but cannot write it (a Task SDK call for that is proposed
in apache/airflow#69403), so the supported way is the public REST API: ``PATCH
/api/v2/dags/{dag_id}/dagRuns/{run_id}`` with ``{"note": ...}``, with a JWT from ``POST /auth/token``.
Where the API server is and who writes the note comes from the connection ``airflow_api``
(``http://<user>:<password>@<host>:<port>``); without it (e.g. under ``airflow dags test``) nothing is
sent and the log says so. Never raises: the note repeats what the log and the mail already say.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from include.retraining.core.reasons import clip

CONN_ID = "airflow_api"
TIMEOUT_SECONDS = 10.0
log = logging.getLogger(__name__)


def set_run_note(dag_id: str, run_id: str, note: str) -> bool:
    """Replace the run's note with ``note`` (clipped to Airflow's 1,000 characters); True if it was set."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = Connection.get(CONN_ID)
    except AirflowNotFoundException:
        log.info("run note not set (no %r connection to the Airflow REST API): %s", CONN_ID, note)
        return False
    try:
        _patch_note(connection, dag_id, run_id, clip(note))
    except Exception as error:  # the note is a courtesy: it must never fail the task
        log.warning("could not set the note of run %s of %s: %s", run_id, dag_id, error)
        return False
    log.info("the run's note in the Airflow UI now reads the same")
    return True


def run_url(dag_id: str, run_id: str) -> str:
    """The run's page in the Airflow UI, on ``[api] base_url`` with Airflow's own fallback, as the log links
    Airflow puts on a task instance (``RuntimeTaskInstance.log_url``)."""
    from airflow.sdk.configuration import conf

    base_url = conf.get("api", "base_url", fallback="http://localhost:8080/")
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id)}"


def _patch_note(connection, dag_id: str, run_id: str, note: str) -> None:
    import httpx

    scheme = connection.schema or "http"
    base = f"{scheme}://{connection.host}" + (f":{connection.port}" if connection.port else "")
    with httpx.Client(base_url=base, timeout=TIMEOUT_SECONDS) as http:
        login = http.post("/auth/token", json={"username": connection.login, "password": connection.password})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        path = f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
        response = http.patch(path, params={"update_mask": "note"}, json={"note": note}, headers=headers)
        response.raise_for_status()
