"""``make bench``: every benchmark of the suite, as ratios against a baseline measured in the same run.

    .venv/bin/python -m bench.run [--sizes 10k,100k] [--repeat 3] [--sections parse,drift,dag,backtest,...]
    .venv/bin/python -m bench.run --sizes '' --sections monitor    # make bench-monitor: needs the Airflow group

Sizes and repeats also come from ``BENCH_SIZES`` / ``BENCH_REPEAT`` (``make bench-1m`` sets 1m). Every
figure is a median of ``repeat`` interleaved rounds (peaks: the largest). The run ends with one
``bench: <name>=<value>`` line per figure and merges them into ``.local/bench/results/<sha>.json``, so
the 10k/100k and the 1M runs of one commit add up, and ``make bench-compare A B`` compares two commits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import datasets
from bench.dag_parse import parse_figures
from bench.growth import flagged, growth_figures
from bench.measure import in_child

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / ".local" / "bench" / "results"
SECTIONS = ("parse", "extract", "drift", "train_evaluate", "dag", "backtest", "monitor")
DEFAULT_SECTIONS = SECTIONS[:-1]  # not the monitor: it starts the full Airflow group (make bench-monitor)
BASELINE_REF = "eb49517"  # before issue 11
PARSE_MODELS = 3  # model configs present while the DAG files are parsed (one DAG trio each)


def git_sha() -> str:
    """The commit the results belong to (``BENCH_SHA`` pins it for a queue of runs); ``-dirty`` if edited."""
    if pinned := os.environ.get("BENCH_SHA"):
        return pinned
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    return sha[:12] + ("-dirty" if dirty else "")


def run_sections(sizes: list[str], sections: list[str], repeat: int, baseline_ref: str) -> dict[str, float]:
    from bench import dag, stages

    figures: dict[str, float] = {}
    if "parse" in sections:
        figures |= report("parse", parse_figures(max(repeat, 5), PARSE_MODELS))
    if "backtest" in sections:  # in memory, no size: a year of generated rows
        from bench.backtest import bench_backtest

        figures |= report("backtest: a year of weekly steps", bench_backtest())
    if "monitor" in sections:
        from bench import monitor

        figures |= report("drift monitor under the Airflow group", monitor.bench_monitor(repeat))
    for label in sizes:
        rows = datasets.SIZES[label]
        if {"extract", "dag"} & set(sections):  # in a child: forked children must not inherit a MongoClient
            in_child(datasets.ensure_collection, label)
        if "extract" in sections:
            figures |= report(f"extract {label}", stages.bench_extract(label, repeat))
        if "drift" in sections:
            figures |= report(f"drift {label}", stages.bench_drift(label, rows, repeat))
        if "train_evaluate" in sections:
            figures |= report(f"train+evaluate {label}", stages.bench_train_evaluate(label, rows, repeat))
        if "dag" in sections:
            figures |= report(f"retrain DAG {label}", dag.bench_dag(label, repeat, baseline_ref))
    return figures


def report(title: str, figures: dict[str, float]) -> dict[str, float]:
    print(f"\n== {title}", flush=True)
    for name, value in figures.items():
        print(f"  {name:<72} {value:>12.4g}", flush=True)
    return figures


def save(figures: dict[str, float], meta: dict) -> Path:
    """Merge into this commit's result file: later runs of the same figure replace earlier ones."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{meta['sha']}.json"
    saved = json.loads(path.read_text()) if path.exists() else {"runs": [], "figures": {}}
    saved["runs"].append(meta)
    saved["figures"] |= figures
    saved["figures"] |= growth_figures(saved["figures"])
    path.write_text(json.dumps(saved, indent=1, sort_keys=True))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "10k,100k"))
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "3")))
    parser.add_argument("--sections", default=os.environ.get("BENCH_SECTIONS", ",".join(DEFAULT_SECTIONS)))
    parser.add_argument("--baseline-ref", default=os.environ.get("BENCH_BASELINE_REF", BASELINE_REF))
    args = parser.parse_args()
    sizes = [s for s in args.sizes.split(",") if s]
    sections = [s for s in args.sections.split(",") if s]
    if unknown := (set(sizes) - set(datasets.SIZES)) | (set(sections) - set(SECTIONS)):
        parser.error(f"unknown sizes/sections {sorted(unknown)}: sizes {list(datasets.SIZES)}, sections {SECTIONS}")
    meta = {
        "sha": git_sha(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "sizes": sizes,
        "sections": sections,
        "repeat": args.repeat,
        "loadavg_start": os.getloadavg()[0],
    }
    figures = run_sections(sizes, sections, args.repeat, args.baseline_ref)
    meta["loadavg_end"] = os.getloadavg()[0]
    path = save(figures, meta)
    merged = json.loads(path.read_text())["figures"]
    growth = {k: v for k, v in merged.items() if k.startswith("growth.")}
    if growth:
        report("growth from 100k to 1m (per row; <= 1.5 is linear enough)", growth)
        for line in flagged(growth) or ["every stage grows linearly or better"]:
            print(f"  {line}")
    print(f"\nresults: {path.relative_to(ROOT)}")
    for name, value in {**figures, **growth}.items():
        print(f"bench: {name}={value:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
