"""Linear growth: from 100k to 1M rows, time per row and memory per row of each stage.

A ratio of 1 means linear, below 1 sub-linear (a fixed cost or a cap), above 1.5 is flagged. Memory is
what the stage added to its process (peak minus the RSS it started with), so imports are not per-row.
"""

from __future__ import annotations

LIMIT = 1.5
SMALL, LARGE, FACTOR = "100k", "1m", 10
# figure stem (without the size) -> (seconds figure, memory figure), each relative to the stem
STAGES = {
    "extract.{size}.read_window": ("seconds", "rss_growth_mb"),
    "drift.{size}.shifted.sampled": ("seconds", "rss_growth_mb"),
    "train_evaluate.{size}.configured": ("seconds", "rss_growth_mb"),
}
TASKS = ("extract", "validate", "detect_drift", "train", "evaluate", "refit", "register", "notify")
# why a stage may grow faster than its rows, where we know it (printed next to a flagged ratio)
REASONS: dict[str, str] = {}


def growth_figures(figures: dict[str, float]) -> dict[str, float]:
    stems = dict(STAGES)
    for task in TASKS:
        stems[f"dag.{{size}}.new.in_process.task.{task}"] = ("", "rss_growth_mb")
    out: dict[str, float] = {}
    for stem, (seconds, memory) in stems.items():
        name = stem.replace("{size}.", "").replace("new.in_process.task.", "")
        for kind, suffix in (("time_per_row", seconds), ("rss_per_row", memory)):
            small = figures.get(_key(stem, SMALL, suffix))
            large = figures.get(_key(stem, LARGE, suffix))
            if small and large and small > 0:
                out[f"growth.{name}.{kind}"] = large / (FACTOR * small)
    return out


def flagged(growth: dict[str, float]) -> list[str]:
    lines = []
    for name, ratio in growth.items():
        if ratio > LIMIT:
            stage = name.split(".")[1]
            lines.append(f"{name}={ratio:.2f} > {LIMIT}: {REASONS.get(stage, 'not explained yet')}")
    return lines


def _key(stem: str, size: str, suffix: str) -> str:
    key = stem.format(size=size)
    return f"{key}.{suffix}" if suffix else key
