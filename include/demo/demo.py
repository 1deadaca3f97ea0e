"""`make demo` (``python -m include.demo.demo``): two real retrain runs on the local stack, then a summary.

Run 1 trains the first champion on the seeded history (no reference yet, so no drift report).
Then a day of drifted documents arrives (older customers, pricier premiums, a changed buying
pattern) and run 2 detects the drift against the champion's training snapshot, archives the
Evidently report, trains a challenger and promotes it only if it beats the champion on the same
holdout. Airflow's verbose output goes to log files; this prints where they are.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
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


def step(title: str, dag_log: Path, conf: dict | None = None) -> None:
    started = time.monotonic()
    print(f"--> {title}", flush=True)
    run_id, state = dags_test(RETRAIN, dag_log, conf)
    print(f"    {run_id or '?'}: {state} in {time.monotonic() - started:.0f} s (log: {dag_log})", flush=True)
    if state != "success":
        print("\n".join(dag_log.read_text().splitlines()[-60:]))
        raise SystemExit(f"{RETRAIN} did not succeed; full log: {dag_log}")


def seed_drifted_day() -> None:
    print("--> a day of drifted documents arrives", flush=True)
    subprocess.run(
        [
            str(BIN / "python"),
            "-m",
            "include.demo.seed",
            "--rows",
            "10000",
            "--days",
            "1",
            "--covariate-drift",
            "1",
            "--concept-drift",
            "1",
            "--seed",
            str(int(time.time())),
        ],
        cwd=ROOT,
        check=True,
    )


def main() -> int:
    logs = Path(os.environ.get("LOCAL_STACK_DIR", ROOT / ".local")) / "logs"
    step(f"run 1: {RETRAIN} on the seeded history", logs / "demo-run-1.log")
    seed_drifted_day()
    step(f"run 2: {RETRAIN} on the last 24 hours", logs / "demo-run-2.log", {"lookback_hours": 24})
    from include.demo.summary import main as summary

    return summary()


if __name__ == "__main__":
    sys.exit(main())
