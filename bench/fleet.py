"""``make bench-fleet N=10``: a fleet of N models retrained at once by the full Airflow group on the celery
topology (PostgreSQL, Redis, two Celery workers), against one run alone measured in the same invocation.

    .venv/bin/python -m bench.fleet --models 10

Onboards N models into a models folder of its own (``<stack state dir>/bench-fleet/models``, not
include/models). Model i is, in turn, the sample generator (vehicle insurance, ``SAMPLE_ROWS`` documents)
or a dataset that ships with scikit-learn (breast_cancer binary, wine and iris multiclass, diabetes
regression; ``include.demo.datasets``), seeded by i, in a MongoDB collection of its own stamped over the
last 30 days, with its model file written by the onboarding library (``include.retraining.onboard``) and
its grants by ``mongo_setup``. Then starts the group with that folder (``up --airflow --topology celery
--models-dir``: another folder restarts the group), unpauses the N retrain DAGs, retrains model 0 alone
(the baseline), then all N at once through the REST API, Params ``{"force_retrain": true}``. Figures,
named ``fleet.n<N>.<figure>``:

- ``baseline.run_seconds``: model 0's run alone, queued to end (the run's own timestamps); at N=1 that run
  is the fleet;
- ``wall_seconds``: the fleet, from its first run queued to its last run ended; ``wall.x_n_baseline``: that
  over N x the baseline (below 1: the workers overlap the runs);
- ``run_seconds.median`` / ``.max``: each fleet run, queued to end;
- ``scheduler_lag.median_seconds`` / ``.max_seconds``: every task instance of the fleet, from
  ``queued_when`` (the scheduler handed it to the executor) to ``start_date`` (it started on a worker): the
  Celery hand-off through Redis and the task process's start;
- ``slot_wait.median_seconds`` / ``.max_seconds``: from ``scheduled_when`` (its upstream done) to
  ``queued_when``: the wait for a free slot (parallelism, pools), which the scheduler holds before queueing;
- ``<worker>.peak_rss_mb`` / ``.peak_pss_mb``: the largest sum over the worker's process tree (Celery's main
  process, its pool, the task processes), sampled from /proc every ``SAMPLE_SECONDS`` during the fleet.
  RSS counts the pages forked processes share once per process; PSS divides them among the sharers, so its
  sum is what the tree costs;
- ``tasks_on.<worker>``: the fleet's task instances that ran there;
- ``dag_processing.<file>.seconds`` and ``dag_processing.total_seconds``: the group's dag-processor's time per
  DAG file with the N model files present (each DAG's ``last_parse_duration`` from the REST API: the file
  processor's wall time in its real context): the median of ``PARSES`` parses once the DAGs exist, before the
  baseline, while nothing runs.

Every run's state is printed; a run that did not succeed makes the bench exit 1 with its tasks and logs.
The figures merge into ``.local/bench/results/<sha>.json`` as ``make bench``'s do. At the end the fleet's
DAGs are paused, and the group is stopped if the bench started or restarted it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.run import git_sha, report, save
from include.retraining.airflow.models import KINDS as MODEL_DAGS  # dags/<kind>.py makes <kind>_<model>
from include.retraining.airflow.models import dag_id
from scripts.airflow_api import AirflowClient, RunTimeout
from scripts.airflow_group import ADMIN_CONN_ID, AirflowGroup
from scripts.local_stack import airflow as local_airflow
from scripts.local_stack.supervisor import running, state_dir

KINDS = ("sample", "breast_cancer", "wine", "iris", "diabetes")  # model i is KINDS[i % 5]
LABELS = {"sample": "Response"} | dict.fromkeys(KINDS[1:], "target")
TIMESTAMPS = {"sample": "ingested_at"} | dict.fromkeys(KINDS[1:], "observed_at")
DATABASE = "fleet"
SAMPLE_ROWS = 5000
DAYS = 30
PARAMS = {"force_retrain": True}
SAMPLE_SECONDS = 1.0
PARSES = 3  # of each DAG file, once the fleet's DAGs exist and sit idle (the group re-parses a file about every 30 s)
PARSE_TIMEOUT = 300.0
APPEAR_TIMEOUT = 300.0
PROC = Path("/proc")


@dataclass(frozen=True)
class FleetModel:
    name: str
    kind: str
    seed: int

    @property
    def dag_id(self) -> str:
        return dag_id("retrain", self.name)


def fleet(count: int, tag: str) -> list[FleetModel]:
    """``count`` models, the kinds in turn; ``tag`` makes the names (collections, DAGs, registered models)
    this invocation's own, so no champion of an earlier run takes part."""
    return [FleetModel(f"fleet_{tag}_{i:02d}_{KINDS[i % len(KINDS)]}", KINDS[i % len(KINDS)], i) for i in range(count)]


# --- onboarding -------------------------------------------------------------------------------------------


def documents(model: FleetModel, end: datetime) -> list[dict[str, Any]]:
    if model.kind == "sample":
        from include.demo.sample_data import generate_documents

        return generate_documents(SAMPLE_ROWS, start=end - timedelta(days=DAYS), end=end, seed=model.seed)
    from include.demo.datasets import documents as dataset_documents

    return dataset_documents(model.kind, days=DAYS, end=end, seed=model.seed)


def onboard(model: FleetModel, folder: Path, end: datetime) -> Path:
    """The model's collection (as the administrator), the file ``make onboard`` would write, and the grants
    ``make mongo-setup`` would make; the file's path."""
    from include.retraining import onboard as onboarding
    from include.retraining.adapters import mongo, mongo_setup
    from include.retraining.core.config import SourceConfig, load_config
    from include.retraining.core.onboarding import propose

    mongo.collection(ADMIN_CONN_ID, DATABASE, model.name).drop()
    mongo.insert_documents(documents(model, end), database=DATABASE, collection=model.name, conn_id=ADMIN_CONN_ID)
    source = SourceConfig(database=DATABASE, collection=model.name, conn_id=ADMIN_CONN_ID)
    facts = onboarding.collection_facts(source, LABELS[model.kind], TIMESTAMPS[model.kind], onboarding.SAMPLE_SIZE)
    proposal = propose(facts, LABELS[model.kind], model.name)
    path = folder / f"{model.name}.json"
    onboarding.write(path, proposal, onboarding.next_commands(path, proposal))
    mongo_setup.setup(load_config(base=path), ADMIN_CONN_ID)
    return path


def onboard_fleet(models: list[FleetModel], folder: Path) -> None:
    """The fleet's files in ``folder``, which keeps no other model file."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):  # an earlier invocation's models
        old.unlink()
    end = datetime.now(UTC) - timedelta(minutes=1)
    for model in models:
        onboard(model, folder, end)
        print(f"  onboarded {model.name}", flush=True)


# --- pure figures -----------------------------------------------------------------------------------------


def stamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def run_seconds(run: Mapping[str, Any]) -> float:
    """A run from queued to end."""
    return stamp(run["end_date"]) - stamp(run["queued_at"])


def wall_seconds(runs: Iterable[Mapping[str, Any]]) -> float:
    """From the first run queued to the last run ended."""
    runs = list(runs)
    return max(stamp(run["end_date"]) for run in runs) - min(stamp(run["queued_at"]) for run in runs)


def lags(
    task_instances: Iterable[Mapping[str, Any]], since: str = "queued_when", until: str = "start_date"
) -> list[float]:
    """Seconds from ``since`` to ``until`` of every task instance that ran on a worker (its hostname); one
    skipped may carry both stamps, from when it was skipped."""
    return [
        stamp(ti[until]) - stamp(ti[since])
        for ti in task_instances
        if ti.get("hostname") and ti.get(since) and ti.get(until)
    ]


def descendants(parents: Mapping[int, int], root: int) -> set[int]:
    """``root`` and every process below it; ``parents``: pid -> parent pid."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def tree_total(memory: Mapping[int, tuple[float, float]], members: Iterable[int]) -> tuple[float, float]:
    """(RSS, PSS) summed over ``members``; a process gone between the two looks counts nothing."""
    present = [memory[pid] for pid in members if pid in memory]
    return sum(rss for rss, _ in present), sum(pss for _, pss in present)


def parse_durations(samples: Iterable[Mapping[str, Any]], dag_ids: set[str], since: float) -> dict[str, list[float]]:
    """DAG file stem -> the durations of its parses that ended after ``since``; ``samples``: DAG records of the
    REST API, read repeatedly. The DAGs of a file share its parse and that parse's duration, so a duration
    counts once."""
    parses: dict[str, set[float]] = {}
    for dag in samples:
        parsed, duration = dag.get("last_parsed_time"), dag.get("last_parse_duration")
        if dag["dag_id"] in dag_ids and parsed and duration is not None and stamp(parsed) > since:
            parses.setdefault(Path(dag["relative_fileloc"]).stem, set()).add(duration)
    return {file: sorted(durations) for file, durations in sorted(parses.items())}


# --- /proc ------------------------------------------------------------------------------------------------


def process_parents() -> dict[int, int]:
    parents = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    return parents


def memory_mb(pid: int) -> tuple[float, float] | None:
    """(RSS, PSS) of a process in MB, from smaps_rollup; None once it is gone."""
    try:
        lines = (PROC / str(pid) / "smaps_rollup").read_text().splitlines()
    except OSError:
        return None
    kilobytes = {line.split(":")[0]: int(line.split()[1]) for line in lines if line.startswith(("Rss:", "Pss:"))}
    return kilobytes.get("Rss", 0) / 1024, kilobytes.get("Pss", 0) / 1024


class TreeMemory:
    """Samples the summed memory of each worker's process tree in a thread while in the ``with`` block."""

    def __init__(self, roots: Mapping[str, int]):
        self.roots = dict(roots)
        self.peaks = dict.fromkeys(roots, (0.0, 0.0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            parents = process_parents()
            for name, root in self.roots.items():
                members = descendants(parents, root)
                memory = {pid: found for pid in members if (found := memory_mb(pid))}
                rss, pss = tree_total(memory, members)
                self.peaks[name] = (max(self.peaks[name][0], rss), max(self.peaks[name][1], pss))
            if self._stop.wait(SAMPLE_SECONDS):
                return


# --- the runs ---------------------------------------------------------------------------------------------


def appeared(client: AirflowClient, dag_ids: list[str]) -> None:
    deadline = time.monotonic() + APPEAR_TIMEOUT
    while missing := set(dag_ids) - {dag["dag_id"] for dag in client.list_dags()}:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(missing)} DAGs did not appear in {APPEAR_TIMEOUT:.0f} s: {sorted(missing)[:3]}")
        time.sleep(3)


def parsing_figures(client: AirflowClient, models: list[FleetModel]) -> dict[str, float]:
    """The dag-processor's time per DAG file: the median of the first ``PARSES`` parses from now (the fleet's
    DAGs exist, nothing runs), of every file that makes the models' DAGs."""
    dag_ids = {dag_id(kind, model.name) for kind in MODEL_DAGS for model in models}
    since, deadline = time.time(), time.monotonic() + PARSE_TIMEOUT
    samples: list[dict[str, Any]] = []
    while True:
        samples += client.list_dags()
        parses = parse_durations(samples, dag_ids, since)
        if all(len(parses.get(kind, ())) >= PARSES for kind in MODEL_DAGS) or time.monotonic() > deadline:
            break
        time.sleep(3)
    medians = {file: statistics.median(durations[:PARSES]) for file, durations in parses.items()}
    figures = {f"dag_processing.{file}.seconds": seconds for file, seconds in medians.items()}
    return figures | {"dag_processing.total_seconds": sum(medians.values())}


def trigger(client: AirflowClient, model: FleetModel) -> dict[str, Any]:
    return client.trigger(model.dag_id, PARAMS, note="bench.fleet")


def finished(client: AirflowClient, runs: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    """Each run once it ended (or as it stood at the deadline, shared by all)."""
    deadline = time.monotonic() + timeout
    ended = []
    for run in runs:
        try:
            ended.append(client.wait_for_run(run["dag_id"], run["dag_run_id"], max(1.0, deadline - time.monotonic())))
        except RunTimeout as late:
            ended.append(late.run)
    return ended


def task_instances(client: AirflowClient, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [ti for run in runs for ti in client.task_instances(run["dag_id"], run["dag_run_id"])]


def run_figures(runs: list[dict[str, Any]], instances: list[dict[str, Any]]) -> dict[str, float]:
    durations = [run_seconds(run) for run in runs]
    lag, wait = lags(instances), lags(instances, "scheduled_when", "queued_when")
    hosts = [ti["hostname"] for ti in instances if ti.get("hostname")]
    return {
        "wall_seconds": wall_seconds(runs),
        "run_seconds.median": statistics.median(durations),
        "run_seconds.max": max(durations),
        "scheduler_lag.median_seconds": statistics.median(lag),
        "scheduler_lag.max_seconds": max(lag),
        "slot_wait.median_seconds": statistics.median(wait),
        "slot_wait.max_seconds": max(wait),
    } | {f"tasks_on.{worker}": float(hosts.count(worker)) for worker in local_airflow.WORKERS}


def memory_figures(peaks: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    figures = {}
    for worker, (rss, pss) in peaks.items():
        figures |= {f"{worker}.peak_rss_mb": rss, f"{worker}.peak_pss_mb": pss}
    return figures


def print_runs(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        took = f"{run_seconds(run):.0f} s" if run.get("end_date") else "unfinished"
        print(f"  {run['dag_id']:<44} {run['dag_run_id']:<48} {run['state']:<8} {took}", flush=True)


def failures(group: AirflowGroup, client: AirflowClient, runs: list[dict[str, Any]]) -> list[str]:
    return [
        group.explain(client, run["dag_id"], run["dag_run_id"], f"{run['dag_id']} {run['dag_run_id']}: {run['state']}")
        for run in runs
        if run["state"] != "success"
    ]


def measure(
    group: AirflowGroup, client: AirflowClient, models: list[FleetModel], timeout: float
) -> tuple[dict[str, float], list[str]]:
    """The figures, and why runs failed (empty: every run succeeded)."""
    retrains = [model.dag_id for model in models]
    appeared(client, retrains)
    for retrain in retrains:
        client.unpause(retrain)
    for retrain in retrains:  # unpausing a catchup=False DAG makes its latest scheduled run
        group.quiet_dag(client, retrain)
    figures = parsing_figures(client, models)
    report("DAG processing with the fleet's model files (dag-processor, seconds)", figures)
    workers = {name: running(group.state, name) for name in local_airflow.WORKERS}
    with TreeMemory(workers) as memory:
        baseline = finished(client, [trigger(client, models[0])], timeout)
    print_runs(baseline)
    if failed := failures(group, client, baseline):
        return figures, failed
    figures["baseline.run_seconds"] = run_seconds(baseline[0])
    runs = baseline
    if len(models) > 1:
        with TreeMemory(workers) as memory:
            runs = finished(client, [trigger(client, model) for model in models], timeout)
        print_runs(runs)
        if failed := failures(group, client, runs):
            return figures, failed
    figures |= run_figures(runs, task_instances(client, runs)) | memory_figures(memory.peaks)
    figures["wall.x_n_baseline"] = figures["wall_seconds"] / (len(models) * figures["baseline.run_seconds"])
    return figures, []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10, help="the fleet's size N")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds the baseline, then the fleet, may take")
    args = parser.parse_args(argv)
    if args.models < 1:
        parser.error("--models must be at least 1")
    state = state_dir()
    folder = state / "bench-fleet" / "models"
    models = fleet(args.models, uuid.uuid4().hex[:6])
    meta = {"sha": git_sha(), "started": datetime.now(UTC).isoformat(timespec="seconds"), "fleet": args.models}
    print(f"== onboarding {args.models} models into {folder}", flush=True)
    onboard_fleet(models, folder)
    group = AirflowGroup(state)
    reused = group.running() and local_airflow.models_dir(state) == folder.resolve()
    client = group.start(topology="celery", models_dir=folder)
    try:
        figures, failed = measure(group, client, models, args.timeout)
    finally:
        for model in models:
            client.pause(model.dag_id)
        client.close()
        if not reused:
            print(group.stop().strip(), flush=True)
    figures = {f"fleet.n{args.models}.{name}": value for name, value in figures.items()}
    meta["loadavg_end"] = os.getloadavg()[0]
    print(f"\nresults: {save(figures, meta).relative_to(local_airflow.REPO)}")
    for name, value in figures.items():
        print(f"bench: {name}={value:.6g}")
    for reason in failed:
        print(f"\nbench-fleet FAILED: {reason}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
