"""The drift monitor under the full Airflow group (``make bench-monitor``): seconds from an insert of drifted
documents to the drift alert, and to a new model version.

    .venv/bin/python -m bench.run --sections monitor [--repeat 3]

Starts the local stack's Airflow group (`make airflow`'s machinery, ``scripts/airflow_group.py``) unless it
already runs, points the ``retrain_config`` Variable at a collection, model and experiment of its own
(``isolated_overrides``), trains a first champion through ``retrain_vehicle_insurance`` (not timed), and
unpauses ``drift_monitor_vehicle_insurance``. Then, ``repeat`` times: wait until the monitor's sensor is
deferred (armed), insert ``DOCUMENTS`` drifted documents (every drift knob of the sample generator at 1.0)
at once, and take the moment the insert returned as the start. Each figure is the median over the rounds:

- ``monitor.insert_to_sensor.seconds``: to the end of the armed run's sensor task (``wait_for_new_data``):
  the trigger saw ``min_new_documents`` settled documents;
- ``monitor.insert_to_check.seconds``: to the end of ``check_drift`` (the drift-check document is written);
- ``monitor.insert_to_alert.seconds``: to the drift-alert mail in the mail sink (the file's mtime);
- ``monitor.insert_to_version.seconds``: to a new version of the model in MLflow (its creation time),
  registered by the retrain the monitor triggered (``trigger.monitor_run_id`` names the round's run);
- ``monitor.insert_to_retrain_end.seconds``: to the end of that retrain run (promotion and notice included).

The floor: the design lets a document count only once it is ``monitoring.grace_seconds`` old (late
writers), and the trigger looks every ``DRIFT_MONITOR_POKE_SECONDS``; so ``grace + poke`` is the longest
the design itself makes the sensor wait for a batch (``grace + poke / 2`` on average).
``monitor.insert_to_alert.x_floor`` (and ``..._sensor`` / ``..._version``) is the figure over
``grace + poke``: 1 would mean everything after the sensor's own wait cost nothing; the excess is
scheduling, task start-up, the drift check and the mail (for the version: the retrain). Grace is set
through the Variable (``BENCH_MONITOR_GRACE_SECONDS``, default 5 s, against 120 s in production); the
poke interval is the group's environment at start (the local stack sets 5 s, production 60 s): a
running group keeps the one it started with. Both are printed and saved (``monitor.grace_seconds``,
``monitor.poke_seconds``), so a ratio is read against the floor it was measured on.

Everything the bench changed is put back at the end, also on failure: the monitor paused and its run
ended, the Variable restored, the DAGs it paused unpaused, and the group stopped if the bench started it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bench.measure import median
from include.demo.sample_data import generate_documents
from include.retraining.adapters import registry
from include.retraining.airflow.runtime import env_config
from scripts.airflow_api import AirflowClient
from scripts.airflow_group import AirflowGroup, insert_recent, isolated_overrides, seed_source
from scripts.local_stack.smtp import deliveries

MODEL = "vehicle_insurance"
MONITOR, RETRAIN = f"drift_monitor_{MODEL}", f"retrain_{MODEL}"
DOCUMENTS = 1200  # above min_new_documents (1000) and Evidently's small-sample regime, as the loop e2e
MIN_NEW_DOCUMENTS = 1000
POKE_DEFAULT = "60"  # dags/drift_monitor.py's default, when the group's environment does not set it
STEP_TIMEOUT = 600.0
POLL = 0.5  # seconds between looks at the mail sink; the figures come from the events' own timestamps
PARTS = ("sensor", "check", "alert", "version", "retrain_end")


def bench_monitor(repeat: int) -> dict[str, float]:
    grace = float(os.environ.get("BENCH_MONITOR_GRACE_SECONDS", "5"))
    group = AirflowGroup()
    started_here = not group.running()
    try:
        client = group.start(unpause=[RETRAIN])
        poke = float(group.env.get("DRIFT_MONITOR_POKE_SECONDS", POKE_DEFAULT))
        print(f"  grace_seconds={grace:g} (Variable retrain_config), poke_seconds={poke:g} (group env)", flush=True)
        bench = Armed(group, client, grace)
        try:
            bench.arm()
            rounds = [bench.round(index) for index in range(repeat)]
        finally:
            bench.disarm()
    finally:
        if started_here:
            print(group.stop().strip(), flush=True)
    figures = {f"monitor.insert_to_{part}.seconds": median([r[part] for r in rounds]) for part in PARTS}
    for part in ("sensor", "alert", "version"):
        figures[f"monitor.insert_to_{part}.x_floor"] = figures[f"monitor.insert_to_{part}.seconds"] / (grace + poke)
    return figures | {"monitor.grace_seconds": grace, "monitor.poke_seconds": poke}


class Armed:
    """The monitor of the example model on data of its own, with a champion: ``arm``; ``disarm`` puts back
    what ``arm`` changed, also after ``arm`` failed half way."""

    def __init__(self, group: AirflowGroup, client: AirflowClient, grace: float):
        self.group, self.client, self.grace = group, client, grace
        self.seen: set[str] = set()  # monitor runs already measured (or older than the bench)
        self.paused: list[str] = []  # DAGs that ran before and were paused by arm (the monitor included)
        self.previous: str | None = None  # the Variable before arm set it
        self.variable_set = False

    def arm(self) -> None:
        client = self.client
        # the monitor is armed only once the champion exists and the Variable points at our data
        for dag in client.list_dags():
            if dag["dag_id"] != RETRAIN and not dag["is_paused"]:
                client.pause(dag["dag_id"])
                self.paused.append(dag["dag_id"])
        self.group.quiet_dag(client, RETRAIN)
        self.group.end_monitor_runs(client, MONITOR)
        self.seen = {run["dag_run_id"] for run in client.list_runs(MONITOR, limit=1000)}
        self.name, overrides = isolated_overrides(
            "bench_monitor",
            monitoring={"min_new_documents": MIN_NEW_DOCUMENTS, "grace_seconds": self.grace},
            training={"hyperparameters": {"max_iter": 60}},
        )
        self.previous = client.get_variable("retrain_config")
        client.set_variable("retrain_config", json.dumps(overrides), description=f"set by {__name__}")
        self.variable_set = True
        self.config = env_config(os.environ | {"AIRFLOW_VAR_RETRAIN_CONFIG": json.dumps(overrides)})
        print(f"  model {self.name}: training the first champion (not timed)", flush=True)
        self.first_champion()
        client.unpause(MONITOR)

    def disarm(self) -> None:
        client = self.client
        client.pause(MONITOR)
        self.group.end_monitor_runs(client, MONITOR)
        self.group.quiet_dag(client, RETRAIN)  # a retrain left running by a failed round
        if self.variable_set and self.previous is None:
            client.delete_variable("retrain_config")
        elif self.variable_set:
            client.set_variable("retrain_config", self.previous)
        for dag_id in self.paused:
            client.unpause(dag_id)

    def first_champion(self) -> None:
        end = datetime.now(UTC) - timedelta(minutes=5)
        seed_source(self.config, generate_documents(5000, start=end - timedelta(days=30), end=end, seed=11))
        run = self.client.trigger(RETRAIN, {"force_retrain": True}, note="first champion for bench.monitor")
        self.finished(RETRAIN, run["dag_run_id"], "the first champion's retrain")

    def round(self, index: int) -> dict[str, float]:
        client, config = self.client, self.config
        armed = self.wait_for(
            "the monitor to arm its sensor", lambda: self.group.armed_monitor_run(client, MONITOR, self.seen)
        )
        run_id = armed["dag_run_id"]
        self.seen.add(run_id)
        mails_before = len(self.alerts())
        insert_recent(config, DOCUMENTS, seed=100 + index, covariate_drift=1.0, concept_drift=1.0)
        inserted = time.time()

        def version():
            versions = registry.client(config.mlflow).search_model_versions(f"name = '{config.model_name}'")
            return next((v for v in versions if v.tags.get("trigger.monitor_run_id") == run_id), None)

        alert_at = self.wait_for("the drift alert mail", lambda: self.alerts()[mails_before:], run_id)[0]
        registered = self.wait_for("the new model version", version, run_id, poll=2.0)  # spare the MLflow server
        retrain = self.finished(RETRAIN, registered.tags["airflow_run_id"], "the monitor's retrain")
        self.finished(MONITOR, run_id, "the monitor run")  # it advances the watermark; the next run re-arms
        ended = {ti["task_id"]: ti["end_date"] for ti in client.task_instances(MONITOR, run_id)}
        seconds = {
            "sensor": stamp(ended["wait_for_new_data"]) - inserted,
            "check": stamp(ended["check_drift"]) - inserted,
            "alert": alert_at - inserted,
            "version": registered.creation_timestamp / 1000 - inserted,
            "retrain_end": stamp(retrain["end_date"]) - inserted,
        }
        print(f"  round {index + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()), flush=True)
        return seconds

    def alerts(self) -> list[float]:
        """When each drift alert for this bench's model was delivered, oldest first."""
        prefix = f"[drift] {self.config.model_name}:"
        return [at for at, message in deliveries() if str(message["Subject"]).startswith(prefix)]

    def wait_for(self, what: str, probe: Callable[[], object], run_id: str | None = None, poll: float = POLL) -> object:
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            if found := probe():
                return found
            time.sleep(poll)
        raise TimeoutError(f"waited {STEP_TIMEOUT:.0f} s for {what}\n{self.group.logs(MONITOR, run_id)}")

    def finished(self, dag_id: str, run_id: str, what: str) -> dict:
        run = self.client.wait_for_run(dag_id, run_id, timeout=STEP_TIMEOUT)
        if run["state"] != "success":
            raise RuntimeError(self.group.explain(self.client, dag_id, run_id, f"{what} ended {run['state']}"))
        return run


def stamp(iso: str) -> float:
    """An Airflow API timestamp as a Unix timestamp."""
    return datetime.fromisoformat(iso).timestamp()
