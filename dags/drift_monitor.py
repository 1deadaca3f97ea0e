"""Drift monitor: wait for new documents in MongoDB, check them for drift, alert and trigger the retrain.

A loop that re-arms itself (`@continuous`, one run at a time):

    open_window -> wait_for_new_data (deferrable sensor, no worker slot while waiting) -> check_drift
      -> drift?  drift:       send_drift_alert  +  trigger_retrain (conf: reason, window, monitor run id)
                 no champion: trigger_retrain
                 no drift:    record_no_drift
      -> advance_watermark (only once the window was handled) -> the next run re-arms the sensor

The watermark lives in MongoDB (`monitoring.state_collection`), so restarts neither skip nor recount
documents. With no new data before the sensor's timeout the run ends skipped and the loop goes on.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task
from mongo_new_data import MongoNewDataSensor

from include.retraining.dag_defaults import START_DATE, default_args, task_setup
from include.retraining.records import DriftResult

POKE_SECONDS = float(os.environ.get("DRIFT_MONITOR_POKE_SECONDS", "60"))
WAIT_TIMEOUT = timedelta(minutes=float(os.environ.get("DRIFT_MONITOR_TIMEOUT_MINUTES", "360")))


@dag(
    dag_id="drift_monitor",
    schedule="@continuous",
    # a fixed past start_date: without one, @continuous gives its first run a zero-length data interval
    # and the scheduler then re-proposes that same logical date forever ("run already exists")
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["mlops", "monitoring", "drift", "evidently"],
    doc_md=__doc__,
)
def drift_monitor():
    @task
    def open_window() -> dict:
        from include.retraining.monitor import open_window

        return open_window(*task_setup())

    window = open_window()
    new_data = MongoNewDataSensor(
        task_id="wait_for_new_data",
        database=window["database"],
        collection=window["collection"],
        timestamp_field=window["timestamp_field"],
        watermark=window["watermark"],
        min_documents=window["min_documents"],
        poke_interval=POKE_SECONDS,
        timeout=WAIT_TIMEOUT,
        deferrable=True,
    )

    @task
    def check_drift(new_data: dict) -> dict:
        from include.retraining.monitor import check_window

        config, run = task_setup()
        return check_window(config, run, new_data["watermark"], new_data["latest"]).to_dict()

    @task.branch
    def route(drift: dict) -> list[str]:
        if drift["status"] == "drift":
            return ["send_drift_alert", "retrain_conf"]
        if drift["status"] == "no_reference":  # no champion yet: the retrain trains the first one
            return ["retrain_conf"]
        return ["record_no_drift"]

    @task
    def send_drift_alert(new_data: dict, drift: dict) -> dict:
        from include.retraining.monitor import window_run
        from include.retraining.pipeline import send_drift_alert

        config, run = task_setup()
        window = window_run(run, new_data["watermark"], new_data["latest"])
        return send_drift_alert(config, window, DriftResult.from_dict(drift), new_data["watermark"])

    @task
    def retrain_conf(new_data: dict, drift: dict) -> dict:
        from include.retraining.monitor import retrain_conf

        _, run = task_setup()
        return retrain_conf(run, new_data["watermark"], new_data["latest"], DriftResult.from_dict(drift))

    @task
    def record_no_drift(drift: dict) -> str:
        return f"no drift: share {drift['drift_share']:.2f} < {drift['threshold']}; check {drift['check_id']}"

    @task(trigger_rule="none_failed_min_one_success")
    def advance_watermark(new_data: dict, drift: dict) -> dict:
        from include.retraining.monitor import advance

        config, run = task_setup()
        return advance(config, run, new_data["watermark"], new_data["latest"], drift["check_id"])

    drift = check_drift(new_data.output)
    routes = route(drift)
    conf = retrain_conf(new_data.output, drift)
    trigger_retrain = TriggerDagRunOperator(
        task_id="trigger_retrain",
        trigger_dag_id="retrain_model",
        conf=conf,
        wait_for_completion=False,  # the retrain has its own lifecycle; the monitor moves on
    )
    recorded = record_no_drift(drift)
    routes >> [send_drift_alert(new_data.output, drift), conf, recorded]
    conf >> trigger_retrain
    # the alert is a side branch: a mail outage must not hold the watermark (the check is recorded)
    [trigger_retrain, recorded] >> advance_watermark(new_data.output, drift)


drift_monitor()
