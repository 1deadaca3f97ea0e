"""``make calibrate``: the measured false-alarm rate and power of the drift checks and of the promotion gate.

    .venv/bin/python -m bench.calibrate [--nights 100] [--retrains 100] [--sizes 1000,10000,100000] [--jobs 2]

Every figure comes from the shipped defaults (``load_config()``) run through the project's own code:
``core.drift.compute_drift`` (Evidently, HTML off), ``core.performance.performance_drift`` and
``core.evaluation.decide_promotion``.

**Data drift**, one simulated night = one reference window and one current window of ``size`` rows:

* stationary, sample generator: both windows from ``include.demo.sample_data.generate_frame``, other seeds;
* stationary, breast_cancer: scikit-learn's bundled real data set (569 rows, 30 skewed, correlated numeric
  columns) is far smaller than a 10k window, so each window is a smoothed bootstrap of it: rows drawn with
  replacement plus Gaussian jitter of 0.1 column standard deviation (without jitter every value is one of
  569, and the ties are not what real windows look like). Both windows come from that one distribution.
  A disjoint random split into two halves is *not* stationary at these sizes: the halves' own sampling
  differences are real differences that a test on 10k rows sees. ``load_digits`` (1,797 rows of 0-16
  pixel counts) has the same size problem; ``fetch_california_housing`` needs a download;
* shifts: ``Age`` (generator) or one random breast_cancer column moved by +0.5 of its standard
  deviation; the share of ``Vehicle_Damage == "Yes"`` raised by 10 points.

**Performance drift**: a gradient-boosting champion trained once on 20k generated rows scores pools of
300k rows (stationary, and concept-only changes ``concept_drift=0.3`` and ``0.5`` of the generator: the
inputs stay, the relation to ``Response`` moves). Each night draws the champion's registration holdout and
the new labeled window (``size`` rows each) from the pools.

**Gate**: one retrain = a holdout of ``size`` rows drawn from the stationary pool, scored by a champion and
a challenger. Both are the real model's log-odds plus independent Gaussian noise: ``sigma`` sets the true
quality, measured on the whole pool, so "equal" is equal by construction and "better"/"worse" differ by
exactly ``TRUE_MARGIN`` of population ROC-AUC.

Ends with ``calibration: ...`` and ``gate: ...`` lines; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
POOL_ROWS, TRAIN_ROWS = 300_000, 20_000
TRUE_MARGIN = 0.02  # population ROC-AUC between a better (worse) challenger and the champion
CHAMPION_SIGMA = 1.0
FALSE_ALARM_TARGET, DETECTION_TARGET, DETECTION_FROM = 0.05, 0.95, 10_000
GATE_EQUAL_TARGET, GATE_BETTER_TARGET, GATE_BETTER_AT = 0.05, 0.90, 10_000
GATE_TARGETS = {"worse": "never", "equal": f"<= {GATE_EQUAL_TARGET:.0%}", "better": f">= {GATE_BETTER_TARGET:.0%}*"}


@dataclass(frozen=True)
class Scenario:
    name: str
    detector: str  # "data" or "performance"
    stationary: bool  # True: an alarm is a false alarm; False: an alarm is a detection


DATA_SCENARIOS = (
    Scenario("stationary: generator", "data", True),
    Scenario("stationary: breast_cancer", "data", True),
    Scenario("Age +0.5 sd: generator", "data", False),
    Scenario("one column +0.5 sd: breast_cancer", "data", False),
    Scenario("Vehicle_Damage share +10 pts: generator", "data", False),
)
PERFORMANCE_SCENARIOS = (
    Scenario("stationary: champion, labels", "performance", True),
    Scenario("concept-only 0.3: champion, labels", "performance", False),
    Scenario("concept-only 0.5: champion, labels", "performance", False),
)
CONCEPTS = {"stationary: champion, labels": 0.0, "concept-only 0.3: champion, labels": 0.3}
CONCEPTS["concept-only 0.5: champion, labels"] = 0.5


# --- data drift ------------------------------------------------------------------------------------------


def data_nights(scenario: str, size: int, seeds: list[int]) -> list[bool]:
    """Alarm per night, from the report's per-column tests run without the report (``column_verdicts``)."""
    from include.retraining.core.config import load_config
    from include.retraining.core.drift import column_verdicts, dataset_drifted, dataset_threshold

    warnings.filterwarnings("ignore")  # scipy's notes on ties and small samples, once per column otherwise
    drift = load_config().drift
    alarms = []
    for seed in seeds:
        current, reference, contract = DRAWS[scenario](np.random.default_rng(seed), size)
        columns = column_verdicts(current, reference, contract, drift)
        share = sum(c.drifted for c in columns) / len(columns)
        alarms.append(dataset_drifted(share, dataset_threshold(drift, len(columns))))
    return alarms


def report_agrees(scenario: str, size: int, seeds: list[int]) -> list[bool]:
    """Per night: does the full Evidently report (``compute_drift``) give the same verdict per column?"""
    from include.retraining.core.config import load_config
    from include.retraining.core.drift import column_verdicts, compute_drift

    warnings.filterwarnings("ignore")
    drift = load_config().drift
    agree = []
    for seed in seeds:
        current, reference, contract = DRAWS[scenario](np.random.default_rng(seed), size)
        fast = column_verdicts(current, reference, contract, drift)
        report = compute_drift(current, reference, contract, drift, report=False).columns
        agree.append([c.drifted for c in fast] == [c.drifted for c in report])
    return agree


def generator_pair(rng: np.random.Generator, size: int):
    from include.demo.sample_data import generate_frame
    from include.retraining.core.config import load_config

    seeds = rng.integers(0, 2**31, 2)
    current, reference = (generate_frame(size, start=START, end=END, seed=int(s)) for s in seeds)
    return current, reference, load_config().contract


def generator_age_shift(rng: np.random.Generator, size: int):
    current, reference, contract = generator_pair(rng, size)
    current["Age"] = current["Age"] + 0.5 * reference["Age"].std()
    return current, reference, contract


def generator_damage_shift(rng: np.random.Generator, size: int):
    current, reference, contract = generator_pair(rng, size)
    undamaged = np.flatnonzero(current["Vehicle_Damage"].to_numpy() == "No")
    flipped = rng.choice(undamaged, size=round(0.10 * size), replace=False)
    current.loc[flipped, "Vehicle_Damage"] = "Yes"
    return current, reference, contract


def cancer_pair(rng: np.random.Generator, size: int):
    from include.retraining.core.config import ContractConfig, FeatureSpec, LabelSpec

    frame = cancer_frame()
    features = tuple(FeatureSpec(str(c), "numeric") for c in frame.columns)
    contract = ContractConfig(label=LabelSpec("target"), features=features)
    return smoothed_bootstrap(frame, rng, size), smoothed_bootstrap(frame, rng, size), contract


def cancer_column_shift(rng: np.random.Generator, size: int):
    current, reference, contract = cancer_pair(rng, size)
    column = current.columns[rng.integers(len(current.columns))]
    current[column] = current[column] + 0.5 * reference[column].std()
    return current, reference, contract


def cancer_frame() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).data


def smoothed_bootstrap(frame: pd.DataFrame, rng: np.random.Generator, size: int) -> pd.DataFrame:
    rows = frame.to_numpy()[rng.integers(0, len(frame), size)]
    jitter = rng.normal(0.0, 1.0, rows.shape) * (0.1 * frame.std().to_numpy())
    return pd.DataFrame(rows + jitter, columns=frame.columns)


DRAWS: dict[str, Callable] = {
    "stationary: generator": generator_pair,
    "stationary: breast_cancer": cancer_pair,
    "Age +0.5 sd: generator": generator_age_shift,
    "one column +0.5 sd: breast_cancer": cancer_column_shift,
    "Vehicle_Damage share +10 pts: generator": generator_damage_shift,
}


# --- the champion and its scored pools ---------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    y: np.ndarray  # bool: bought vehicle insurance
    logit: np.ndarray  # the champion's log-odds


def scored_pools() -> dict[float, Pool]:
    """The champion (the shipped estimator, trained once) scoring 300k rows per concept."""
    from include.demo.sample_data import generate_frame
    from include.retraining.core.config import load_config
    from include.retraining.core.training import fit

    config = load_config()
    model = fit(generate_frame(TRAIN_ROWS, start=START, end=END, seed=1), config.contract, config.training)
    pools = {}
    for number, concept in enumerate(sorted(set(CONCEPTS.values()))):
        frame = generate_frame(POOL_ROWS, start=START, end=END, seed=100 + number, concept_drift=concept)
        probability = np.clip(model.predict_proba(frame[config.contract.feature_names])[:, 1], 1e-9, 1 - 1e-9)
        pools[concept] = Pool(y=frame["Response"].to_numpy() == 1, logit=np.log(probability / (1 - probability)))
    return pools


def performance_nights(scenario: str, size: int, seeds: list[int], pools: dict[float, Pool]) -> list[bool]:
    from include.retraining.core.config import load_config
    from include.retraining.core.evaluation import METRIC_FUNCTIONS
    from include.retraining.core.performance import performance_drift

    settings, stationary, current_pool = load_config().performance, pools[0.0], pools[CONCEPTS[scenario]]
    alarms = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        holdout = rng.choice(POOL_ROWS, size, replace=False)  # the champion's holdout at registration
        reference = METRIC_FUNCTIONS["roc_auc"](stationary.y[holdout], stationary.logit[holdout])
        rows = rng.choice(POOL_ROWS, size, replace=False)
        y, scores = current_pool.y[rows].astype(int), current_pool.logit[rows]
        alarms.append(performance_drift(y, scores, reference, "roc_auc", settings, seed=seed).drifted)
    return alarms


# --- the gate --------------------------------------------------------------------------------------------


def noisy_auc(pool: Pool, sigma: float) -> float:
    """Population ROC-AUC of the champion's log-odds plus N(0, sigma) noise (fixed noise draw)."""
    from sklearn.metrics import roc_auc_score

    noise = np.random.default_rng(0).normal(0.0, 1.0, len(pool.y))
    return float(roc_auc_score(pool.y, pool.logit + sigma * noise))


def sigma_for(pool: Pool, target: float) -> float:
    """The noise level whose population ROC-AUC is ``target`` (bisection: AUC falls as sigma grows)."""
    low, high = 0.0, 10.0
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if noisy_auc(pool, middle) > target else (low, middle)
    return (low + high) / 2


def gate_cases(pool: Pool) -> dict[str, tuple[float, float]]:
    """case -> (challenger sigma, its population ROC-AUC); the champion has ``CHAMPION_SIGMA``.

    "better/2" (half the margin) has no target: it shows where the gate's power ends.
    """
    champion = noisy_auc(pool, CHAMPION_SIGMA)
    cases = {
        "worse": champion - TRUE_MARGIN,
        "equal": champion,
        "better/2": champion + TRUE_MARGIN / 2,
        "better": champion + TRUE_MARGIN,
    }
    return {case: (sigma_for(pool, auc) if case != "equal" else CHAMPION_SIGMA, auc) for case, auc in cases.items()}


def gate_retrains(sigma: float, size: int, seeds: list[int], pool: Pool) -> list[bool]:
    from include.retraining.core.config import load_config
    from include.retraining.core.evaluation import decide_promotion

    gate = load_config().gate
    promoted = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        rows = rng.choice(POOL_ROWS, size, replace=False)
        y, logit = pool.y[rows].astype(int), pool.logit[rows]
        champion = _sigmoid(logit + rng.normal(0.0, CHAMPION_SIGMA, size))
        challenger = _sigmoid(logit + rng.normal(0.0, sigma, size))
        promoted.append(decide_promotion(y, challenger, champion, "1", gate).passed)
    return promoted


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-logit))


# --- running and reporting -------------------------------------------------------------------------------


def chunks(count: int, parts: int, offset: int) -> list[list[int]]:
    """``count`` seeds from ``offset`` split into ``parts`` lists (so both cores share a long cell)."""
    seeds = list(range(offset, offset + count))
    return [seeds[i::parts] for i in range(parts) if seeds[i::parts]]


def run_cells(tasks: list[tuple[tuple, Callable, tuple]], jobs: int) -> dict[tuple, float]:
    """Run ``(key, function, args)`` tasks in ``jobs`` processes; the share of True per key."""
    from joblib import Parallel, delayed

    outcomes = Parallel(n_jobs=jobs)(delayed(function)(*args) for _, function, args in tasks)
    totals: dict[tuple, list[bool]] = {}
    for (key, _, _), outcome in zip(tasks, outcomes, strict=True):
        totals.setdefault(key, []).extend(outcome)
    return {key: float(np.mean(values)) for key, values in totals.items()}


def drift_tasks(sizes: list[int], nights: int, jobs: int, pools: dict[float, Pool]) -> list:
    tasks = []
    for number, scenario in enumerate((*DATA_SCENARIOS, *PERFORMANCE_SCENARIOS)):
        for size in sizes:
            for seeds in chunks(nights, jobs, offset=number * 1_000_000 + size):
                if scenario.detector == "data":
                    tasks.append(((scenario.name, size), data_nights, (scenario.name, size, seeds)))
                else:
                    tasks.append(((scenario.name, size), performance_nights, (scenario.name, size, seeds, pools)))
    return tasks


def report_tasks(sizes: list[int], nights: int) -> list:
    """The first ``nights`` nights of every data-drift cell again, through the full report."""
    tasks = []
    for number, scenario in enumerate(DATA_SCENARIOS):
        for size in sizes:
            seeds = list(range(number * 1_000_000 + size, number * 1_000_000 + size + nights))
            tasks.append(((scenario.name, size), report_agrees, (scenario.name, size, seeds)))
    return tasks


def gate_tasks(sizes: list[int], retrains: int, jobs: int, pool: Pool, cases: dict) -> list:
    tasks = []
    for case, (sigma, _) in cases.items():
        for size in sizes:
            for seeds in chunks(retrains, jobs, offset=7_000_000 + size):
                tasks.append(((case, size), gate_retrains, (sigma, size, seeds, pool)))
    return tasks


def print_drift_table(rates: dict[tuple, float], sizes: list[int]) -> None:
    header = f"{'detector':<17} {'scenario':<42} {'target':<10}" + "".join(f"{size:>9,}" for size in sizes)
    print("\nalarm rate per night (size = rows in each window)\n" + header + "\n" + "-" * len(header))
    for scenario in (*DATA_SCENARIOS, *PERFORMANCE_SCENARIOS):
        target = f"<= {FALSE_ALARM_TARGET:.0%}" if scenario.stationary else f">= {DETECTION_TARGET:.0%}*"
        cells = "".join(f"{rates[scenario.name, size]:>9.1%}" for size in sizes)
        print(f"{scenario.detector + ' drift':<17} {scenario.name:<42} {target:<10}{cells}")
    print(f"* detection target from {DETECTION_FROM:,} rows")


def print_gate_table(rates: dict[tuple, float], sizes: list[int], cases: dict, champion_auc: float) -> None:
    header = f"{'challenger':<10} {'population ROC-AUC':<28} {'target':<8}" + "".join(f"{s:>9,}" for s in sizes)
    print("\npromotion rate per retrain (size = holdout rows)\n" + header + "\n" + "-" * len(header))
    for case, (_, auc) in cases.items():
        truth, target = f"{auc:.4f} (champion {champion_auc:.4f})", GATE_TARGETS.get(case, "-")
        print(f"{case:<10} {truth:<28} {target:<8}" + "".join(f"{rates[case, size]:>9.1%}" for size in sizes))
    print(f"* at {GATE_BETTER_AT:,} holdout rows")


def drift_summary(rates: dict[tuple, float], sizes: list[int]) -> tuple[float, float, list[str]]:
    scenarios = (*DATA_SCENARIOS, *PERFORMANCE_SCENARIOS)
    false_alarm = max(rates[s.name, size] for s in scenarios if s.stationary for size in sizes)
    detected = [rates[s.name, size] for s in scenarios if not s.stationary for size in sizes if size >= DETECTION_FROM]
    detection = min(detected) if detected else float("nan")
    misses = [f"false alarm {false_alarm:.1%} > {FALSE_ALARM_TARGET:.0%}"] if false_alarm > FALSE_ALARM_TARGET else []
    if not detection >= DETECTION_TARGET:
        misses.append(f"detection {detection:.1%} < {DETECTION_TARGET:.0%}")
    return false_alarm, detection, misses


def gate_summary(rates: dict[tuple, float], sizes: list[int], retrains: int) -> tuple[int, float, float, list[str]]:
    worse = sum(round(rates["worse", size] * retrains) for size in sizes)
    equal = max(rates["equal", size] for size in sizes)
    better = rates["better", GATE_BETTER_AT] if GATE_BETTER_AT in sizes else float("nan")
    misses = [f"worse promoted {worse} times"] if worse else []
    if equal > GATE_EQUAL_TARGET:
        misses.append(f"equal promoted {equal:.1%} > {GATE_EQUAL_TARGET:.0%}")
    if not better >= GATE_BETTER_TARGET:
        misses.append(f"better promoted {better:.1%} < {GATE_BETTER_TARGET:.0%} at {GATE_BETTER_AT:,}")
    return worse, equal, better, misses


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--nights", type=int, default=100, help="nights per scenario and window size")
    parser.add_argument("--retrains", type=int, default=100, help="retrains per gate case and holdout size")
    parser.add_argument("--sizes", default="1000,10000,100000", help="window sizes (rows)")
    parser.add_argument("--gate-sizes", default="1000,10000", help="holdout sizes (rows)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--report-nights", type=int, default=2, help="nights per cell re-run as a full report")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes, gate_sizes = ([int(s) for s in text.split(",")] for text in (args.sizes, args.gate_sizes))
    started = time.perf_counter()
    pools = scored_pools()
    cases = gate_cases(pools[0.0])
    print(f"champion trained and {len(pools)} pools scored in {time.perf_counter() - started:.0f} s", flush=True)
    drift_rates = run_cells(drift_tasks(sizes, args.nights, args.jobs, pools), args.jobs)
    print(f"drift nights done at {time.perf_counter() - started:.0f} s", flush=True)
    agreement = run_cells(report_tasks(sizes, args.report_nights), args.jobs)
    checked = args.report_nights * len(agreement)
    agreed = round(sum(agreement.values()) * args.report_nights)
    print(f"report cross-check done at {time.perf_counter() - started:.0f} s", flush=True)
    gate_rates = run_cells(gate_tasks(gate_sizes, args.retrains, args.jobs, pools[0.0], cases), args.jobs)
    print_drift_table(drift_rates, sizes)
    print_gate_table(gate_rates, gate_sizes, cases, noisy_auc(pools[0.0], CHAMPION_SIGMA))
    print(f"\nthe full Evidently report gave the same per-column verdicts on {agreed} of {checked} nights re-run")
    false_alarm, detection, drift_misses = drift_summary(drift_rates, sizes)
    if agreed != checked:
        drift_misses.append(f"report disagreed on {checked - agreed} nights")
    worse, equal, better, gate_misses = gate_summary(gate_rates, gate_sizes, args.retrains)
    nights = args.nights * len(sizes) * (len(DATA_SCENARIOS) + len(PERFORMANCE_SCENARIOS))
    verdict = "; ".join(drift_misses + gate_misses) or "met"
    print(f"\nwall time {time.perf_counter() - started:.0f} s; targets: {verdict}")
    print(f"calibration: false_alarm_max={false_alarm:.3f} detection_min={detection:.3f} nights={nights}")
    retrains = args.retrains * len(gate_sizes) * len(cases)
    print(f"gate: worse_promoted={worse} equal_promoted={equal:.3f} better_promoted={better:.3f} retrains={retrains}")
    return 1 if drift_misses or gate_misses else 0


if __name__ == "__main__":
    sys.exit(main())
