"""DAG parse cost: each DAG file against a minimal one-task DAG, measured in the same run.

Target (issue 2): each DAG file imports in under 0.3 s, with ``--models`` model configs present (copies
of the example, default 3; each DAG file makes one DAG per model), in the dag-processor's own context: Airflow's
SDK and the file processor (with airflow.models) are loaded before it parses any file, so a DAG that
imports e.g. TriggerDagRunOperator pays nothing for the models it pulls in. Prints absolute medians and the ratio to
the baseline; a ratio near 1 means the file adds nothing heavy at parse time.

    .venv/bin/python bench/dag_parse.py [--repeat 7] [--models 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 0.3
EXAMPLE_MODEL = ROOT / "include" / "models" / "vehicle_insurance.json"
BASELINE_DAG = """
from airflow.sdk import dag, task

@dag(schedule=None)
def baseline():
    @task
    def noop():
        return None

    noop()

baseline()
"""
# One fresh interpreter per sample: parse cost includes first-time imports, as in the dag-processor.
PROBE = """
import json, sys, time, importlib.util
import airflow.sdk
import airflow.dag_processing.processor
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps(time.perf_counter() - started))
"""


def parse_seconds(path: Path, repeat: int, models_dir: Path) -> float:
    # Airflow puts the plugins folder on sys.path; the repo root makes `include` importable
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}", "RETRAIN_MODELS_DIR": str(models_dir)}
    samples = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=env, check=True
        )
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def write_models(folder: Path, count: int) -> None:
    """``count`` copies of the example model, each reading a collection of its own."""
    example = json.loads(EXAMPLE_MODEL.read_text())
    for i in range(count):
        source = example["source"] | {"collection": f"bench_parse_{i}"}
        (folder / f"model_{i}.json").write_text(json.dumps(example | {"source": source}))


def parse_figures(repeat: int, models: int) -> dict[str, float]:
    """Median parse seconds of the one-task baseline and of each DAG file, with ``models`` model configs."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        baseline_file = folder / "baseline_dag.py"
        baseline_file.write_text(BASELINE_DAG)
        write_models(folder, models)
        baseline = parse_seconds(baseline_file, repeat, folder)
        figures = {"parse.model_configs": float(models), "parse.baseline_one_task.seconds": baseline}
        for dag_file in sorted((ROOT / "dags").glob("*.py")):
            seconds = parse_seconds(dag_file, repeat, folder)
            figures[f"parse.{dag_file.stem}.seconds"] = seconds
            figures[f"parse.{dag_file.stem}.x_baseline"] = seconds / baseline
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--models", type=int, default=3)
    args = parser.parse_args()
    figures = parse_figures(args.repeat, args.models)
    print(f"with {args.models} model configs")
    print(f"{'dag file':<24}{'median s':>10}{'x baseline':>12}{'target':>10}")
    print(f"{'(baseline: 1 task)':<24}{figures['parse.baseline_one_task.seconds']:>10.3f}{1:>12.2f}")
    files = [key.split(".")[1] for key in figures if key.endswith(".x_baseline")]
    for stem in files:
        seconds = figures[f"parse.{stem}.seconds"]
        verdict = "ok" if seconds < TARGET_SECONDS else "SLOW"
        print(f"{stem + '.py':<24}{seconds:>10.3f}{figures[f'parse.{stem}.x_baseline']:>12.2f}{verdict:>10}")
    return 0 if all(figures[f"parse.{stem}.seconds"] < TARGET_SECONDS for stem in files) else 1


if __name__ == "__main__":
    sys.exit(main())
