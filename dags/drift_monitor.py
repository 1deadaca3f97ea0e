"""Drift monitor, one ``drift_monitor_<model>`` DAG per model config: wait for new documents in MongoDB,
check them for drift, alert and trigger the model's ``retrain_<model>``.

A loop that re-arms itself (`@continuous`, one run at a time):

    resolve_config -> open_window -> wait_for_new_data (deferrable sensor, no worker slot while waiting) -> check_drift
      -> route   data or performance drift: send_drift_alert + trigger_retrain (conf: reason, window, the check)
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
from airflow.sdk import dag
from mongo_new_data import MongoNewDataSensor

from include.retraining.airflow.dag_defaults import dag_defaults
from include.retraining.airflow.models import Model, dag_id, models
from include.retraining.airflow.task import stage_tasks
from include.retraining.core.graph import MONITOR

POKE_SECONDS = float(os.environ.get("DRIFT_MONITOR_POKE_SECONDS", "60"))
WAIT_TIMEOUT = timedelta(minutes=float(os.environ.get("DRIFT_MONITOR_TIMEOUT_MINUTES", "360")))


def drift_monitor_dag(model: Model):
    @dag(
        dag_id=dag_id("drift_monitor", model.id),
        schedule="@continuous",
        **dag_defaults(model.config.start_date),  # incl. the fixed past start_date that @continuous needs
        tags=["mlops", "monitoring", "drift", "evidently", model.id],
        doc_md=__doc__,
    )
    def drift_monitor():
        # each task is handed the run's config and the records its stage takes (core.graph.MONITOR)
        tasks = stage_tasks(MONITOR, model.id)
        config = tasks.resolve_config()
        window = tasks.open_window(config)
        new_data = MongoNewDataSensor(
            task_id="wait_for_new_data",
            database=window["database"],
            collection=window["collection"],
            timestamp_field=window["timestamp_field"],
            timestamp_type=window["timestamp_type"],
            watermark=window["watermark"],
            min_documents=window["min_documents"],
            grace_seconds=window["grace_seconds"],
            poke_interval=POKE_SECONDS,
            timeout=WAIT_TIMEOUT,
            deferrable=True,
        ).output
        drift = tasks.check_drift(config, new_data)
        conf = tasks.retrain_conf(config, new_data, drift)
        trigger_retrain = TriggerDagRunOperator(
            task_id="trigger_retrain",
            trigger_dag_id=dag_id("retrain", model.id),
            # one retrain per monitor run: a retried trigger finds the run it created and skips
            trigger_run_id="drift_monitor__{{ run_id }}",
            skip_when_already_exists=True,
            conf=conf,
            wait_for_completion=False,  # the retrain has its own lifecycle; the monitor moves on
        )
        recorded = tasks.record_no_drift(config, drift)
        tasks.route(config, drift) >> [tasks.send_drift_alert(config, new_data, drift), conf, recorded]
        # the alert is a side branch: a mail outage must not hold the watermark (the check is recorded)
        [trigger_retrain, recorded] >> tasks.advance_watermark(config, new_data, drift)

    return drift_monitor()


for _model in models():
    drift_monitor_dag(_model)
