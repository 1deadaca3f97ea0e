"""No lost or double-counted documents: the drift monitor's stages (open_window, the sensor's probe,
check_drift, advance_watermark) loop while a concurrent writer inserts documents whose timestamps arrive
out of order within the grace period, plus a few future-dated ones. Every settled document is checked in
exactly one window, and the watermark never passes now."""

from __future__ import annotations

import itertools
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from include.demo.sample_data import generate_documents
from include.retraining.adapters import mongo
from include.retraining.core.records import NewData, RunInfo
from include.retraining.stages import monitor

pytestmark = pytest.mark.integration

GRACE = timedelta(seconds=8)
STEPS, BATCH_ROWS = 6, 40


def insert_late_batch(config, step: int) -> int:
    """A concurrent writer's batch: stamped over the last 90% of the grace period (so partly before the
    newest timestamp the monitor has already seen), in shuffled order."""
    now = datetime.now(UTC)
    docs = generate_documents(BATCH_ROWS, start=now - GRACE * 0.9, end=now, seed=step)
    random.Random(step).shuffle(docs)
    source = config.source
    return mongo.insert_documents(docs, database=source.database, collection=source.collection)


def check_one_window(config, window: dict, cycle: int) -> tuple[NewData, int] | None:
    """One monitor run without the scheduler: probe like the sensor, then check and advance."""
    source = config.source
    found = mongo.new_documents(
        source.conn_id,
        source.database,
        source.collection,
        source.timestamp_field,
        mongo.as_watermark(window["watermark"]),
        1,
        timedelta(seconds=window["grace_seconds"]),
    )
    if found.count < 1:
        return None
    run = RunInfo(
        dag_id="drift_monitor_vehicle_insurance", run_id=f"window-{cycle}", run_end=datetime.now(UTC).isoformat()
    )
    new_data = NewData(count=found.count, watermark=window["watermark"], latest=found.latest, future=found.future)
    drift = monitor.check_drift(config, run, new_data)
    monitor.advance_watermark(config, run, new_data, drift)
    return new_data, drift.rows_current


def test_every_document_is_checked_in_exactly_one_window(config_factory):
    config = config_factory({"monitoring": {"grace_seconds": GRACE.total_seconds(), "min_new_documents": 1}})
    source = config.source
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    future = generate_documents(5, start=tomorrow, end=tomorrow + timedelta(days=1))
    mongo.insert_documents(future, database=source.database, collection=source.collection)
    started = RunInfo(dag_id="drift_monitor_vehicle_insurance", run_id=f"open-{uuid.uuid4().hex[:6]}", run_end="-")
    first_watermark = monitor.open_window(config, started)["watermark"]

    written, windows, cycle = 0, [], 0
    for step in range(STEPS):  # the writer and the monitor take turns; the batches arrive late
        written += insert_late_batch(config, step)
        if checked := check_one_window(config, monitor.open_window(config, started), cycle := cycle + 1):
            windows.append((*checked, step < STEPS - 1))
        time.sleep(2)
    time.sleep(GRACE.total_seconds())  # everything has settled now
    while checked := check_one_window(config, monitor.open_window(config, started), cycle := cycle + 1):
        windows.append((*checked, False))

    bounds = [(w.watermark, w.latest) for w, _, _ in windows]
    assert bounds[0][0] == first_watermark
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(bounds)), "windows are chained"
    assert any(writing for _, _, writing in windows), "no window was checked while the writer was writing"
    assert sum(rows for _, rows, _ in windows) == written == STEPS * BATCH_ROWS
    assert all(w.future == len(future) for w, _, _ in windows)  # reported every time, never checked
    assert all(datetime.fromisoformat(w.latest) < tomorrow for w, _, _ in windows)
    watermark = mongo.read_watermark(source, config.monitoring.state_collection, monitor.watermark_key(config))
    assert watermark <= datetime.now(UTC)
