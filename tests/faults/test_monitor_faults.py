"""The drift monitor DAG through Airflow's own retry path with faults mid-call, against a clean pass over the
same window: it must end with exactly the drift-check documents, watermark, alert mails and registry of
the clean pass.

Both models hold the same documents and first champion; their watermarks are opened on the same newest
document, then the same drifted documents arrive. The reference runs the monitor's stages in this process
on what the sensor reports; the fault run is `airflow dags test --use-executor drift_monitor_...` (the
deferrable sensor waits in the harness's triggerer) with:

- send_drift_alert: the SMTP server stopped after the alert was rendered, before it was handed over;
- advance_watermark: the task process killed right after the watermark's compare-and-set moved it, before
  the task returned.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from include.demo.sample_data import generate_documents
from include.retraining import stages
from include.retraining.adapters import mongo
from include.retraining.airflow import task as adapter
from include.retraining.core.graph import MONITOR
from include.retraining.core.records import NewData, RunInfo
from include.retraining.stages.monitor import watermark_key
from scripts.airflow_group import seed_source
from tests.faults.airflow_runs import Plan
from tests.faults.conftest import Stack, config_of, documents, manual_run, model_overrides, run_stages, with_ids
from tests.faults.end_state import end_state

pytestmark = [
    pytest.mark.faults,
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning"),
]

DAG_ID = "drift_monitor_vehicle_insurance"
FAULTS = [
    {"task": "send_drift_alert", "point": "before_drift_alert_sent", "action": "outage", "service": "smtp"},
    {"task": "advance_watermark", "point": "after_watermark_advanced", "action": "kill"},
]
WINDOW = {"min_new_documents": 200, "grace_seconds": 1}
FIRST, OPENED, REFERENCE = "faults__first_champion", "faults__opened", "faults__monitor_reference"


def monitor_pass(config, run: RunInfo) -> dict:
    """The monitor's stages after its sensor, in this process, on the window the sensor would report."""
    key = watermark_key(config)
    watermark = mongo.read_watermark(config.source, config.monitoring.state_collection, key, config.monitoring_database)
    source = config.source
    found = mongo.new_documents(
        source.conn_id, source.database, source.collection, source.timestamp_field, watermark,
        config.monitoring.min_new_documents, timedelta(seconds=config.monitoring.grace_seconds),
    )  # fmt: skip
    records = {"wait_for_new_data": NewData(found.count, watermark.isoformat(), found.latest, found.future)}
    for name in MONITOR.names:
        if name in ("record_no_drift", "open_window"):  # the window is open; the drift route is taken
            continue
        stage = getattr(stages, name)
        records[name] = adapter.call_stage(stage, MONITOR.inputs(name, records), lambda: config, lambda: run)
    return records


def test_monitor_faults_mid_call_end_as_one_clean_pass(fault_airflow, fault_env, stack: Stack, tmp_path):
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    docs, first_end = documents(end)
    now = datetime.now(UTC)
    drifted = with_ids(
        generate_documents(600, start=now - timedelta(minutes=30), end=now, seed=23, covariate_drift=1.0)
    )
    models = {role: model_overrides(f"monitor_{role}", monitoring=WINDOW) for role in ("reference", "fault")}
    configs = {role: config_of(overrides) for role, overrides in models.items()}
    for config in configs.values():
        seed_source(config, copy.deepcopy(docs))
        run_stages(config, manual_run(FIRST, first_end))
        stages.open_window(config, RunInfo(dag_id=DAG_ID, run_id=OPENED, run_end=end.isoformat()))
        seed_source(config, copy.deepcopy(drifted))

    reference_run = RunInfo(dag_id=DAG_ID, run_id=REFERENCE, run_end=datetime.now(UTC).isoformat())
    records = monitor_pass(configs["reference"], reference_run)
    assert records["route"] == ["send_drift_alert", "retrain_conf"], records["check_drift"]
    plan = Plan(tmp_path, FAULTS, stack)
    run = fault_airflow.run(DAG_ID, models["fault"], plan)

    assert run.state == "success", run.explain()
    assert plan.missed() == [], f"faults that never struck: {plan.missed()}\n{run.explain()}"
    assert run.retried == {"send_drift_alert": 1, "advance_watermark": 1}, run.explain()
    assert "MailError" in plan.errors["0-send_drift_alert-before_drift_alert_sent"], plan.errors
    runs = {"first": FIRST, "opened": OPENED}
    reference = end_state(configs["reference"], runs | {"monitor": REFERENCE}, watermark_key(configs["reference"]))
    faulted = end_state(configs["fault"], runs | {"monitor": run.run_id}, watermark_key(configs["fault"]))
    assert faulted == reference
