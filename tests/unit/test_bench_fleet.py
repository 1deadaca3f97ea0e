"""The pure figures of ``make bench-fleet`` (bench/fleet.py): the fleet's models, run times, scheduler lag,
process-tree memory and the dag-processor's parse times."""

from __future__ import annotations

import pytest

from bench.fleet import (
    KINDS,
    descendants,
    fleet,
    lags,
    parse_durations,
    run_seconds,
    stamp,
    tree_total,
    wall_seconds,
)


def at(second: float) -> str:
    return f"2026-12-07T10:00:{second:06.3f}+00:00"


def test_the_fleet_takes_every_kind_in_turn_under_names_of_its_own():
    models = fleet(7, "ab12")

    assert [model.kind for model in models] == [*KINDS, KINDS[0], KINDS[1]]
    assert len({model.name for model in models}) == 7
    assert models[5].dag_id == "retrain_fleet_ab12_05_sample"
    assert models[5].seed != models[0].seed  # the same kind again draws other rows


def test_wall_time_spans_the_first_queued_to_the_last_ended_run():
    runs = [
        {"queued_at": at(1), "end_date": at(20)},
        {"queued_at": at(2), "end_date": at(41.5)},
        {"queued_at": at(3), "end_date": at(10)},
    ]

    assert wall_seconds(runs) == pytest.approx(40.5)
    assert [run_seconds(run) for run in runs] == pytest.approx([19, 39.5, 7])


def test_lag_is_queued_to_started_and_skips_task_instances_that_never_ran():
    instances = [
        {"queued_when": at(1), "start_date": at(1.25), "hostname": "airflow-worker-1"},
        {"queued_when": at(2), "start_date": at(14), "hostname": "airflow-worker-2"},
        {"queued_when": None, "start_date": at(2), "hostname": ""},  # skipped by the branch
        {"queued_when": at(1), "start_date": at(30), "hostname": ""},  # queued, then its run was failed
        {"queued_when": at(3), "start_date": None, "hostname": None},  # still queued
    ]

    assert lags(instances) == pytest.approx([0.25, 12])


def test_the_wait_for_a_slot_is_scheduled_to_queued():
    instances = [
        {"scheduled_when": at(1), "queued_when": at(9), "start_date": at(9.5), "hostname": "airflow-worker-1"},
        {"scheduled_when": at(2), "queued_when": at(2.5), "start_date": at(3), "hostname": "airflow-worker-2"},
    ]

    assert lags(instances, "scheduled_when", "queued_when") == pytest.approx([8, 0.5])


def test_a_workers_tree_is_its_process_and_everything_below_it_only():
    parents = {10: 1, 11: 10, 12: 10, 13: 12, 20: 1, 21: 20, 14: 13}

    assert descendants(parents, 10) == {10, 11, 12, 13, 14}
    assert descendants(parents, 20) == {20, 21}
    assert descendants(parents, 99) == {99}


def test_tree_memory_sums_the_members_that_were_still_there():
    memory = {10: (300.0, 120.0), 11: (250.0, 60.0), 21: (900.0, 900.0)}

    assert tree_total(memory, {10, 11, 12}) == (550.0, 180.0)


def test_parse_times_are_per_file_each_parse_once_after_the_fleet_settled():
    def dag(dag_id, file, parsed, seconds):
        return {"dag_id": dag_id, "relative_fileloc": file, "last_parsed_time": parsed, "last_parse_duration": seconds}

    samples = [
        dag("retrain_a", "retrain.py", at(5), 9.0),  # before the fleet's DAGs settled
        dag("retrain_a", "retrain.py", at(12), 2.0),
        dag("retrain_b", "retrain.py", at(12.1), 2.0),  # the same parse, seen through another DAG
        dag("retrain_a", "retrain.py", at(12), 2.0),  # the same parse, read again
        dag("retrain_a", "retrain.py", at(42), 3.5),
        dag("score_a", "score.py", at(15), 1.5),
        dag("retrain_other", "retrain.py", at(40), 50.0),  # not the fleet's
    ]

    parses = parse_durations(samples, {"retrain_a", "retrain_b", "score_a"}, since=stamp(at(10)))

    assert parses == {"retrain": [2.0, 3.5], "score": [1.5]}
