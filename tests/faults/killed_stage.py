"""Run one stage in this process and SIGKILL the process right after a chosen write reached its service,
before the stage returns: a task process killed mid-write (an OOM kill, a lost worker).

    python -m tests.faults.killed_stage <stage> <after> <input.json>

``after``: ``mongo:<collection>`` kills after an insert or update on that collection succeeded;
``mlflow:<MlflowClient method>`` after that call returned (e.g. ``set_registered_model_alias``: the
version exists and carries the alias, the stage has not returned). The input holds the
config (``dataclasses.asdict``), the RunInfo and the records of the stages before.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from pathlib import Path

from include.retraining.core.config import load_config
from include.retraining.core.records import RunInfo
from tests.faults.conftest import RECORDS, Attempt, call_stage

MONGO_WRITES = (
    "insert_one",
    "insert_many",
    "update_one",
    "update_many",
    "replace_one",
    "find_one_and_update",
    "bulk_write",
)


def kill_after(owner: type, method: str, when=lambda *args: True) -> None:
    original = getattr(owner, method)

    @functools.wraps(original)
    def write_then_die(*args, **kwargs):
        result = original(*args, **kwargs)
        if when(*args):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, method, write_then_die)


def main(stage: str, after: str, path: str) -> None:
    payload = json.loads(Path(path).read_text())
    config = load_config(payload["config"])
    attempt = Attempt(RunInfo.from_dict(payload["run"]))
    attempt.records = {name: RECORDS[name].from_dict(data) for name, data in payload["records"].items()}
    system, target = after.split(":", 1)
    if system == "mongo":
        from pymongo.collection import Collection

        for method in MONGO_WRITES:
            kill_after(Collection, method, lambda collection, *rest: collection.name == target)
    else:
        from mlflow import MlflowClient

        kill_after(MlflowClient, target)
    call_stage(stage, config, attempt)
    raise SystemExit(f"{stage} returned: the kill after {after} never happened")


if __name__ == "__main__":
    main(*sys.argv[1:4])
