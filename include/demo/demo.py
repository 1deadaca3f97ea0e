"""`make demo` (``python -m include.demo.demo``): two real retrain runs on the local stack, then a summary.

The sample history (20,000 documents over 30 days, about 670 a day) ends ``CHANGE_DAYS`` days ago, and
run 1 trains the first champion at that moment (no reference yet, so no drift report). Then the change
arrives as real changes do: ``CHANGE_DAYS`` days of drifted documents (older customers, pricier premiums,
a changed buying pattern) at the history's own rate, up to now. Run 2, a plain scheduled-style run at
the shipped defaults, detects the drift in the rows newer than the champion's, archives the Evidently
report, trains a challenger on the older of them (the newest fifth is the out-of-time holdout), promotes
it only if it beats the champion there, and then refits it on training + holdout. Airflow's verbose
output goes to log files; this prints where they are.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RETRAIN = "retrain_vehicle_insurance"  # the example model's retrain DAG (include/models/vehicle_insurance.json)
FINISHED = re.compile(r"DagRun Finished: dag_id=(?P<dag>\S+), .*?run_id=(?P<run>[^,]+), .*?state=(?P<state>\w+)")


def dags_test(
    dag_id: str, log_path: Path, conf: dict | None = None, env: dict | None = None, logical_date: str | None = None
) -> tuple[str, str]:
    """Run ``airflow dags test`` (at ``logical_date``, default now) and return (run_id, final state) read
    from its own report."""
    command = [str(BIN / "airflow"), "dags", "test", dag_id, *([logical_date] if logical_date else [])]
    if conf:
        command += ["-c", json.dumps(conf)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, check=False)
    matches = list(FINISHED.finditer(log_path.read_text()))
    if not matches:
        return "", "unknown"
    return matches[-1]["run"], matches[-1]["state"]


HISTORY_ROWS, HISTORY_DAYS = 20_000, 30
CHANGE_DAYS = 3  # the drifted documents arrive over the last days, at the history's rate


def step(title: str, dag_log: Path, logical_date: str | None = None) -> None:
    started = time.monotonic()
    print(f"--> {title}", flush=True)
    run_id, state = dags_test(RETRAIN, dag_log, logical_date=logical_date)
    print(f"    {run_id or '?'}: {state} in {time.monotonic() - started:.0f} s (log: {dag_log})", flush=True)
    if state != "success":
        print("\n".join(dag_log.read_text().splitlines()[-60:]))
        raise SystemExit(f"{RETRAIN} did not succeed; full log: {dag_log}")


def seed(rows: int, days: float, end: datetime, *options: str) -> None:
    command = [str(BIN / "python"), "-m", "include.demo.seed", "--rows", str(rows), "--days", str(days)]
    subprocess.run([*command, "--end", end.isoformat(), *options], cwd=ROOT, check=True)


def main() -> int:
    logs = Path(os.environ.get("LOCAL_STACK_DIR", ROOT / ".local")) / "logs"
    now = datetime.now(UTC)
    change = now - timedelta(days=CHANGE_DAYS)
    seed(HISTORY_ROWS, HISTORY_DAYS, change, "--if-empty")
    title = f"run 1: {RETRAIN} on the seeded history, as of {change:%Y-%m-%d %H:%M} UTC"
    step(title, logs / "demo-run-1.log", change.isoformat())
    print(f"--> {CHANGE_DAYS} days of drifted documents arrive at the history's rate", flush=True)
    rate = HISTORY_ROWS / HISTORY_DAYS
    drift = ("--covariate-drift", "1", "--concept-drift", "1", "--seed", str(int(now.timestamp())))
    seed(round(rate * CHANGE_DAYS), CHANGE_DAYS, now, *drift)
    step(f"run 2: {RETRAIN} now, at the shipped defaults", logs / "demo-run-2.log", now.isoformat())
    from include.demo.summary import main as summary

    return summary()


if __name__ == "__main__":
    sys.exit(main())
