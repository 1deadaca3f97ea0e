"""The before/after table of one result file: per size, the baseline (today's code or the library's way)
against this commit, and the ratio. ``python -m bench.table [sha]`` (default: the newest result file)."""

from __future__ import annotations

import json
import sys

from bench.datasets import SIZES
from bench.run import RESULTS

# row label -> (baseline figure, new figure, unit); {s} is the size
ROWS = {
    "retrain dags test, s": ("dag.{s}.baseline.dags_test.seconds", "dag.{s}.new.dags_test.seconds"),
    "retrain peak RSS, MB": ("dag.{s}.baseline.dags_test.peak_rss_mb", "dag.{s}.new.dags_test.peak_rss_mb"),
    "  extract task, s": ("dag.{s}.baseline.dags_test.task.extract", "dag.{s}.new.dags_test.task.extract"),
    "  validate task, s": ("dag.{s}.baseline.dags_test.task.validate", "dag.{s}.new.dags_test.task.validate"),
    "  detect_drift task, s": (
        "dag.{s}.baseline.dags_test.task.detect_drift",
        "dag.{s}.new.dags_test.task.detect_drift",
    ),
    "  train task, s": ("dag.{s}.baseline.dags_test.task.train", "dag.{s}.new.dags_test.task.train"),
    "  evaluate task, s": ("dag.{s}.baseline.dags_test.task.evaluate", "dag.{s}.new.dags_test.task.evaluate"),
    "dags test vs in one process, s": ("dag.{s}.new.in_process.seconds", "dag.{s}.new.dags_test.seconds"),
    "train+evaluate (today vs configured), s": (
        "train_evaluate.{s}.today.seconds",
        "train_evaluate.{s}.configured.seconds",
    ),
    "train+evaluate ROC-AUC": ("train_evaluate.{s}.today.roc_auc", "train_evaluate.{s}.configured.roc_auc"),
    "train+evaluate peak RSS, MB": (
        "train_evaluate.{s}.today.peak_rss_mb",
        "train_evaluate.{s}.configured.peak_rss_mb",
    ),
    "drift, shifted (Evidently full vs sampled), s": (
        "drift.{s}.shifted.evidently_full.seconds",
        "drift.{s}.shifted.sampled.seconds",
    ),
    "drift, shifted, peak RSS, MB": (
        "drift.{s}.shifted.evidently_full.peak_rss_mb",
        "drift.{s}.shifted.sampled.peak_rss_mb",
    ),
    "drift verdicts agree (stationary, shifted)": (
        "drift.{s}.stationary.columns_agree",
        "drift.{s}.shifted.columns_agree",
    ),
    "extract (find list vs read_window), s": ("extract.{s}.find_list.seconds", "extract.{s}.read_window.seconds"),
}


def main() -> int:
    files = sorted(RESULTS.glob(f"{sys.argv[1] if len(sys.argv) > 1 else ''}*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        sys.exit(f"no result files in {RESULTS}")
    figures = json.loads(files[-1].read_text())["figures"]
    print(f"{files[-1].stem}: baseline -> this commit (ratio baseline / new; > 1 is faster or smaller)")
    print(f"{'':<46}" + "".join(f"{size:>28}" for size in SIZES))
    for label, (before, after) in ROWS.items():
        cells = []
        for size in SIZES:
            a, b = figures.get(before.format(s=size)), figures.get(after.format(s=size))
            if a is None or b is None:
                cells.append(f"{'-':>28}")
            elif "agree" in label or "ROC" in label:
                cells.append(f"{a:>13.4g} {b:>8.4g}      ")
            else:
                cells.append(f"{a:>10.4g} -> {b:>7.4g} {a / b:>6.2f}x")
        print(f"{label:<46}" + "".join(cells))
    print(f"{'largest task peak RSS (in process), MB':<46}" + "".join(largest_task(figures, size) for size in SIZES))
    return 0


def largest_task(figures: dict[str, float], size: str) -> str:
    """The task with the largest peak RSS when each stage runs in a process of its own (target: <= 1 GB)."""
    prefix, suffix = f"dag.{size}.new.in_process.task.", ".peak_rss_mb"
    peaks = {
        key[len(prefix) : -len(suffix)]: value
        for key, value in figures.items()
        if key.startswith(prefix) and key.endswith(suffix)
    }
    if not peaks:
        return f"{'-':>28}"
    task = max(peaks, key=peaks.get)
    return f"{f'{task} {peaks[task]:.0f}':>28}"


if __name__ == "__main__":
    sys.exit(main())
