"""``make backtest MODEL=<model> FROM=<date> TO=<date> [STEP=1d]``: replay an onboarded collection's history.

    python -m include.retraining.backtest --model vehicle_insurance --from 2026-01-01 --to 2026-03-31 --step 7d

Reads the history once from MongoDB (the model's source, contracted columns, ``FROM - window .. TO + STEP``),
applies the data contract, then runs ``replay.replay`` for the three policies and writes the table, the
``backtest:`` lines, a CSV of every step and a PNG of the metric over time (``.local/backtest/``).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from include.retraining.backtest import replay, report
from include.retraining.core.config import PipelineConfig, load_config

OUTPUT = Path(".local/backtest")
STEP_UNITS = {"d": "days", "h": "hours", "w": "weeks"}


def parse_step(text: str) -> timedelta:
    """``1d``, ``7d``, ``12h``, ``2w`` as a timedelta."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([dhw])", text.strip())
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"STEP {text!r}: write a positive number and a unit, e.g. 1d, 7d, 12h")
    return timedelta(**{STEP_UNITS[match[2]]: float(match[1])})


def parse_date(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_history(config: PipelineConfig, start: datetime, end: datetime):
    """The valid rows of ``(start, end]`` in time order: read once, the contract applied once."""
    from include.retraining.adapters import mongo
    from include.retraining.core.contract import validate_frame

    frame = mongo.read_window(config.source, config.contract, start, end)
    outcome = validate_frame(frame, config.contract, config.source.id_field, for_training=False)
    if len(outcome.quarantined):
        print(f"quarantined {len(outcome.quarantined):,} of {len(frame):,} rows:", *outcome.problems, sep="\n  ")
    return outcome.valid


def lookback(config: PipelineConfig) -> timedelta:
    hours, days = config.source.lookback_hours, config.training.window_days
    return timedelta(hours=hours) if hours else timedelta(days=days or 36_500)


def main(argv: Sequence[str] | None = None) -> int:
    from tqdm import tqdm

    from include.retraining.airflow.models import model_path

    parser = argparse.ArgumentParser(prog="make backtest", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", required=True, help="a model in $RETRAIN_MODELS_DIR (include/models), or a model file's path"
    )
    parser.add_argument("--from", dest="start", required=True, type=parse_date, help="the first step (ISO date)")
    parser.add_argument("--to", dest="end", required=True, type=parse_date, help="the last step (ISO date)")
    parser.add_argument("--step", default="1d", type=parse_step, help="1d, 7d, 12h, ... (default 1d)")
    parser.add_argument("--policies", default=",".join(replay.POLICIES), help="a subset of configured,always,never")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    policies = tuple(p for p in args.policies.split(",") if p)
    if unknown := set(policies) - set(replay.POLICIES):
        parser.error(f"unknown policies {sorted(unknown)}: pick from {list(replay.POLICIES)}")
    if args.end < args.start:
        parser.error(f"TO {args.end.date()} is before FROM {args.start.date()}")

    path = Path(args.model) if args.model.endswith(".json") else model_path(args.model)
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.json"))
        parser.error(f"no model config {path}: pick one of {known}, or give a path to a model file")
    config = load_config(base=path)
    began = time.monotonic()
    history = read_history(config, args.start - lookback(config), args.end + args.step)
    read_seconds = time.monotonic() - began
    ends = replay.step_ends(args.start, args.end, args.step)
    steps = f"{len(ends)} steps of {_step_text(args.step)}"
    print(f"{config.model_name}: {len(history):,} valid rows, {steps}, read in {read_seconds:.1f} s")
    if history.empty:
        print("the history holds no rows in that range: pick FROM/TO inside the data", file=sys.stderr)
        return 2

    def progress(steps):
        return tqdm(steps, total=len(ends), desc="steps", unit="step", file=sys.stderr)

    runs = replay.replay(config, history, ends, args.step, policies, progress)
    metric = config.gate.primary_metric
    summaries = report.summarize(runs, metric)
    seconds = time.monotonic() - began
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{path.stem}-{args.start.date()}-{args.end.date()}-{_step_text(args.step)}"
    csv_path = report.write_csv(runs, args.out / f"{stem}.csv")
    title = f"{config.model_name}: prequential {metric}, {len(ends)} steps of {_step_text(args.step)}"
    png_path = report.write_png(runs, metric, title, args.out / f"{stem}.png")
    print()
    print(report.table(summaries, metric))
    print()
    for target, met, figures in report.targets(summaries, metric):
        print(f"target {'met   ' if met else 'MISSED'} {target}: {figures}")
    print(f"\ncsv: {csv_path}\npng: {png_path}")
    print(*report.lines(summaries, metric), sep="\n")
    print(f"backtest: seconds={seconds:.1f} read_seconds={read_seconds:.1f} steps={len(ends)} rows={len(history)}")
    return 0


def _step_text(step: timedelta) -> str:
    hours = step.total_seconds() / 3600
    return f"{hours / 24:g}d" if hours % 24 == 0 else f"{hours:g}h"


if __name__ == "__main__":
    sys.exit(main())
