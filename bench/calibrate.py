"""``make calibrate``: how often the drift checks and the promotion gate fire when they should not and when
they should, with the decision parameters tuned on one set of seeds and every figure reported on another.

    .venv/bin/python -m bench.calibrate [--nights 100] [--retrains 100] [--sizes 1000,10000,100000]
        [--rates 200,1000,10000] [--gate-sizes 1000,10000] [--jobs 2]

Every decision is the project's own code on ``load_config()``: ``core.drift.column_verdicts`` and
``dataset_drifted`` (a few nights per cell cross-checked against ``compute_drift``, the Evidently report),
``core.performance.performance_drift`` and ``core.evaluation.decide_promotion``.

**Out of sample.** The tuning seeds (from 0; the seeds of the earlier, in-sample calibration) pick the two
values this calibration may tune: ``drift.false_alarm_rate``, the largest of ``FALSE_ALARM_RATE_GRID`` whose
stationary nights (i.i.d. at every size and the nightly shape at every rate) alarm at most
``FALSE_ALARM_TARGET``, and ``gate.confidence``, the smallest of ``CONFIDENCE_GRID`` that promotes equal
challengers at most ``GATE_EQUAL_TARGET`` at every holdout size. The report seeds (from 10**9, used for no
choice) measure every figure with those two values and check the targets. The output says whether tuning
confirmed the shipped values; it never changes them. The methods, the sample size and the performance-drift
settings are not tuned, only measured.

**I.i.d. nights** (size = rows in each window; data drift: one reference and one current window):

* stationary, sample generator: both windows from ``include.demo.sample_data.generate_frame``, other seeds;
* stationary, breast_cancer: scikit-learn's bundled real data set (569 rows, 30 skewed, correlated numeric
  columns) is far smaller than a 10k window, so each window is a smoothed bootstrap of it: rows drawn with
  replacement plus Gaussian jitter of 0.1 column standard deviation (without jitter every value is one of
  569, and the ties are not what real windows look like). Both windows come from that one distribution.
  A disjoint random split into two halves is *not* stationary at these sizes: the halves' own sampling
  differences are real differences that a test on 10k rows sees;
* shifts: ``Age`` (generator; kept in whole years, see ``whole_years``) or one random breast_cancer column
  moved by +0.5 of its standard deviation; the share of ``Vehicle_Damage == "Yes"`` raised by 10 points (the
  two generator rows are read off the smallest-shift nights, ``SWEPT_ROWS``);
* performance drift: a gradient-boosting champion trained once on 20k generated rows scores pools of 300k
  rows (stationary, and concept-only changes ``concept_drift=0.3`` and ``0.5``: the inputs stay, the relation
  to ``Response`` moves). A night draws the champion's registration holdout and the new labeled window
  (``size`` rows each, up to ``PERFORMANCE_MAX_ROWS``) from the pools.

**The nightly shape** (size = rows a day):

* data drift: the reference is the 90 days before the night (the champion's training slice, at most
  ``REFERENCE_ROWS_CAP`` rows), the current window one day, a random day of the week; the product's code
  samples both to ``drift.max_rows``. Both
  carry a weekly season that is not drift: weekend customers are ``WEEKEND_AGE_YEARS`` older and
  ``WEEKEND_ONLINE_SHARE`` of them buy through the online channel;
* performance drift: the champion's score at registration is its ROC-AUC on the holdout one night gives
  (``core.windows.holdout_size`` of a night's rows, on ``load_config().training``), every label in. On the
  night checked, ``ON_TIME_LABELED`` of the rows have their label, but only ``LATE_LABELED`` of one late
  segment's (Region_Code 28, or Vehicle_Age "< 1 Year"), so the labeled rows over-represent the segments
  labeled early.

**Smallest shift**: per size, the same nights judged at every shift of ``SHIFT_GRID`` (Age in reference
standard deviations, the Vehicle_Damage "Yes" share in points); the smallest that alarms on half and on 95%
of the nights.

**Gate**: one retrain = a holdout drawn from the stationary pool, scored by a champion and a challenger, both
the real model's log-odds plus independent Gaussian noise whose ``sigma`` sets the true quality, measured on
the whole pool: "equal" is equal by construction, "better"/"worse" differ by exactly ``TRUE_MARGIN`` of
population ROC-AUC. Holdout sizes: ``--gate-sizes`` and the holdout one night gives at each ``--rates``.

Ends with ``calibration: ...``, ``gate: ...`` and ``calibration-oos: ...`` lines; exits 1 when a target is
missed on the report seeds.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from include.demo.customers import MAX_AGE
from include.demo.sample_data import generate_frame
from include.retraining.core.config import (
    ContractConfig,
    DriftConfig,
    FeatureSpec,
    GateConfig,
    LabelSpec,
    PerformanceConfig,
    PipelineConfig,
    TrainingConfig,
    load_config,
)
from include.retraining.core.drift import column_verdicts, compute_drift, dataset_drifted, dataset_threshold
from include.retraining.core.evaluation import decide_promotion, metric_value
from include.retraining.core.performance import performance_drift
from include.retraining.core.windows import holdout_size

START, DAY = datetime(2026, 1, 1, tzinfo=UTC), timedelta(days=1)  # a Thursday
POOL_ROWS, TRAIN_ROWS, REFERENCE_DAYS, DEMO_RATE = 300_000, 20_000, 90, 1_000
# at most this many reference rows are generated: the product samples a larger 90-day window uniformly, which
# gives the same distribution as these rows spread over the 90 days (900k rows take 4 s a night to generate)
REFERENCE_ROWS_CAP = 100_000
TRUE_MARGIN = 0.02  # population ROC-AUC between a better (worse) challenger and the champion
CHAMPION_SIGMA = 1.0
FALSE_ALARM_TARGET, DETECTION_TARGET, DETECTION_FROM = 0.05, 0.95, 10_000
GATE_EQUAL_TARGET, GATE_BETTER_TARGET, GATE_BETTER_AT = 0.05, 0.90, 10_000
GATE_TARGETS = {"worse": "never", "equal": f"<= {GATE_EQUAL_TARGET:.0%}", "better": f">= {GATE_BETTER_TARGET:.0%}*"}
TUNING_SEEDS, REPORT_SEEDS = 0, 1_000_000_000  # a cell's seeds lie within 10**8 of its phase's start
FALSE_ALARM_RATE_GRID = (0.001, 0.005, 0.01, 0.02, 0.05)
CONFIDENCE_GRID = (0.9, 0.95, 0.975, 0.99)
WEEKEND_DAYS, WEEKEND_AGE_YEARS, WEEKEND_ONLINE_SHARE, ONLINE_CHANNEL = (5, 6), 2, 0.05, 160.0
ON_TIME_LABELED, LATE_LABELED = 0.9, 0.1  # shares of a night's rows labeled when it is checked
LATE_SEGMENTS = {"Region_Code 28": ("Region_Code", 28.0), "Vehicle_Age < 1 Year": ("Vehicle_Age", "< 1 Year")}
SHIFT_GRID = {"Age": (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5), "Vehicle_Damage": (1, 2, 3, 5, 7, 10, 15)}
SHIFT_LEVELS = (0.5, 0.95)  # the shares of nights that alarm, for the smallest-shift table
PERFORMANCE_MAX_ROWS = 10_000  # i.i.d. performance nights (its bootstrap takes 2 s a night at 100k rows)
GATE_BLOCK, SHIFT_BLOCK = 7, 20  # seed blocks; the gate's is the earlier calibration's
NIGHTS_PER_TASK = 10


@dataclass(frozen=True)
class Scenario:
    name: str
    detector: str  # "data" or "performance"
    stationary: bool  # True: an alarm is a false alarm; False: an alarm is a detection


IID_DATA = (
    Scenario("stationary: generator", "data", True),
    Scenario("stationary: breast_cancer", "data", True),
    Scenario("Age +0.5 sd: generator", "data", False),
    Scenario("one column +0.5 sd: breast_cancer", "data", False),
    Scenario("Vehicle_Damage share +10 pts: generator", "data", False),
)
IID_PERFORMANCE = (
    Scenario("stationary: champion, labels", "performance", True),
    Scenario("concept-only 0.3: champion, labels", "performance", False),
    Scenario("concept-only 0.5: champion, labels", "performance", False),
)
NIGHTLY = (
    Scenario("weekly season: one day vs 90 days", "data", True),
    Scenario("labels on time: 90% of every segment", "performance", True),
    Scenario("labels late: Region_Code 28 (28% of rows)", "performance", True),
    Scenario("labels late: Vehicle_Age < 1 Year (43%)", "performance", True),
)
# i.i.d. rows read off the smallest-shift nights (the same draws, shifted by these)
SWEPT_ROWS = {"Age +0.5 sd: generator": ("Age", 0.5), "Vehicle_Damage share +10 pts: generator": ("Vehicle_Damage", 10)}
NIGHTLY_NAMES = {scenario.name for scenario in NIGHTLY}
BLOCKS = {scenario.name: number for number, scenario in enumerate((*IID_DATA, *IID_PERFORMANCE, *NIGHTLY))}
TUNED_ON = ("stationary: generator", "stationary: breast_cancer", "weekly season: one day vs 90 days")
# performance scenario -> (concept drift of its night, late segment, share labeled on time)
PERFORMANCE_SETUPS = {
    "stationary: champion, labels": (0.0, None, 1.0),
    "concept-only 0.3: champion, labels": (0.3, None, 1.0),
    "concept-only 0.5: champion, labels": (0.5, None, 1.0),
    "labels on time: 90% of every segment": (0.0, None, ON_TIME_LABELED),
    "labels late: Region_Code 28 (28% of rows)": (0.0, "Region_Code 28", ON_TIME_LABELED),
    "labels late: Vehicle_Age < 1 Year (43%)": (0.0, "Vehicle_Age < 1 Year", ON_TIME_LABELED),
}


# --- data drift ------------------------------------------------------------------------------------------


def alarmed(current: pd.DataFrame, reference: pd.DataFrame, contract: ContractConfig, drift: DriftConfig) -> bool:
    """The dataset verdict from the report's per-column tests run without the report (``column_verdicts``)."""
    columns = column_verdicts(current, reference, contract, drift)
    share = sum(c.drifted for c in columns) / len(columns)
    return dataset_drifted(share, dataset_threshold(drift, len(columns)))


def data_nights(scenario: str, size: int, seeds: list[int], drifts: Sequence[DriftConfig]) -> list[tuple[bool, ...]]:
    """Per night, the alarm under each of ``drifts``: one drawn pair judged by every configuration."""
    warnings.filterwarnings("ignore")  # scipy's notes on ties and small samples, once per column otherwise
    nights = []
    for seed in seeds:
        current, reference, contract = DRAWS[scenario](np.random.default_rng(seed), size)
        nights.append(tuple(alarmed(current, reference, contract, drift) for drift in drifts))
    return nights


def shift_nights(shape: str, size: int, seeds: list[int], drift: DriftConfig) -> list[tuple[bool, ...]]:
    """Per night, the alarm at every shift of ``SHIFT_GRID`` (in its order) on one drawn pair."""
    warnings.filterwarnings("ignore")
    nights = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        current, reference, contract = PAIRS[shape](rng, size)
        nights.append(shifted_alarms(current, reference, contract, drift, noise=int(rng.integers(2**31))))
    return nights


def shifted_alarms(
    current: pd.DataFrame, reference: pd.DataFrame, contract: ContractConfig, drift: DriftConfig, noise: int
) -> tuple[bool, ...]:
    """Every shift drawn with the same ``noise`` seed: a larger shift moves the same rows further, so the alarm
    rates rise with the shift without sampling noise between the grid's steps."""
    return tuple(
        alarmed(shifted(current, reference, column, shift, np.random.default_rng(noise)), reference, contract, drift)
        for column, shifts in SHIFT_GRID.items()
        for shift in shifts
    )


def report_agrees(scenario: str, size: int, seeds: list[int], drift: DriftConfig) -> list[tuple[bool]]:
    """Per night: does the full Evidently report (``compute_drift``) give the same verdict per column?"""
    warnings.filterwarnings("ignore")
    agree = []
    for seed in seeds:
        current, reference, contract = DRAWS[scenario](np.random.default_rng(seed), size)
        fast = column_verdicts(current, reference, contract, drift)
        report = compute_drift(current, reference, contract, drift, report=False).columns
        agree.append(([c.drifted for c in fast] == [c.drifted for c in report],))
    return agree


def generator_pair(rng: np.random.Generator, size: int):
    seeds = rng.integers(0, 2**31, 2)
    current, reference = (generate_frame(size, start=START, end=START + DAY, seed=int(s)) for s in seeds)
    return current, reference, load_config().contract


def nightly_pair(rng: np.random.Generator, rate: int):
    """One day of ``rate`` rows, a random day of the week, against the ``REFERENCE_DAYS`` before it (the
    champion's training slice, ``rate`` rows a day up to ``REFERENCE_ROWS_CAP``), both with the weekly season."""
    night = START + DAY * int(rng.integers(7))
    reference_seed, current_seed = (int(s) for s in rng.integers(0, 2**31, 2))
    reference = generate_frame(
        min(REFERENCE_DAYS * rate, REFERENCE_ROWS_CAP),
        start=night - REFERENCE_DAYS * DAY,
        end=night,
        seed=reference_seed,
    )
    current = generate_frame(rate, start=night, end=night + DAY, seed=current_seed)
    return with_weekly_season(current, rng), with_weekly_season(reference, rng), load_config().contract


def with_weekly_season(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """A copy in which weekend customers are ``WEEKEND_AGE_YEARS`` older (at most the generator's oldest) and
    ``WEEKEND_ONLINE_SHARE`` of them buy through the online channel: a weekly pattern, not drift."""
    frame = frame.copy()
    weekend = frame["ingested_at"].dt.dayofweek.isin(WEEKEND_DAYS).to_numpy()
    frame.loc[weekend, "Age"] = np.minimum(frame.loc[weekend, "Age"] + WEEKEND_AGE_YEARS, MAX_AGE)
    frame.loc[weekend & (rng.random(len(frame)) < WEEKEND_ONLINE_SHARE), "Policy_Sales_Channel"] = ONLINE_CHANNEL
    return frame


def shifted(
    current: pd.DataFrame, reference: pd.DataFrame, column: str, shift: float, rng: np.random.Generator
) -> pd.DataFrame:
    """A copy of ``current`` with Age moved by ``shift`` reference standard deviations, or with the share of
    Vehicle_Damage "Yes" raised by ``shift`` percentage points."""
    frame = current.copy()
    if column == "Age":
        frame["Age"] = whole_years(frame["Age"].to_numpy() + shift * reference["Age"].std(), rng)
    else:
        undamaged = np.flatnonzero(frame["Vehicle_Damage"].to_numpy() == "No")
        frame.loc[rng.permutation(undamaged)[: round(shift / 100 * len(frame))], "Vehicle_Damage"] = "Yes"
    return frame


def whole_years(ages: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ages moved by a fraction of a year, whole again: each rounds up with the probability of its fraction,
    so the mean moves by the shift. Left fractional, every value would sit between the reference's whole
    years, and KS alarms on that alone (the largest one-year share is 6 points) whatever the shift."""
    whole = np.floor(ages)
    return (whole + (rng.random(len(ages)) < ages - whole)).astype(np.int64)


def generator_age_shift(rng: np.random.Generator, size: int):
    current, reference, contract = generator_pair(rng, size)
    return shifted(current, reference, "Age", 0.5, rng), reference, contract


def generator_damage_shift(rng: np.random.Generator, size: int):
    current, reference, contract = generator_pair(rng, size)
    return shifted(current, reference, "Vehicle_Damage", 10, rng), reference, contract


def cancer_pair(rng: np.random.Generator, size: int):
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
    "weekly season: one day vs 90 days": nightly_pair,
}
PAIRS: dict[str, Callable] = {"i.i.d.": generator_pair, "nightly": nightly_pair}


# --- the champion, its scored pools and performance drift ----------------------------------------------------


@dataclass(frozen=True)
class Pool:
    y: np.ndarray  # 1: bought vehicle insurance
    logit: np.ndarray  # the champion's log-odds
    segments: dict[str, np.ndarray]  # late segment -> which rows belong to it


def scored_pools(config: PipelineConfig) -> dict[float, Pool]:
    """The champion (the shipped estimator, trained once) scoring 300k rows per concept."""
    from include.retraining.core.training import fit

    model = fit(generate_frame(TRAIN_ROWS, start=START, end=START + DAY, seed=1), config.contract, config.training)
    concepts = sorted({concept for concept, _, _ in PERFORMANCE_SETUPS.values()})
    pools = {}
    for number, concept in enumerate(concepts):
        frame = generate_frame(POOL_ROWS, start=START, end=START + DAY, seed=100 + number, concept_drift=concept)
        probability = np.clip(model.predict_proba(frame[config.contract.feature_names])[:, 1], 1e-9, 1 - 1e-9)
        segments = {name: (frame[column] == value).to_numpy() for name, (column, value) in LATE_SEGMENTS.items()}
        logit = np.log(probability / (1 - probability))
        pools[concept] = Pool(y=frame["Response"].to_numpy(), logit=logit, segments=segments)
    return pools


def labeled_on_the_night(late: np.ndarray, on_time: float, rng: np.random.Generator) -> np.ndarray:
    """Whose label has arrived when the night is checked: ``on_time`` of the rows, ``LATE_LABELED`` of the
    late segment's (``late`` marks them)."""
    return rng.random(len(late)) < np.where(late, LATE_LABELED, on_time)


def performance_nights(
    scenario: str, holdout_rows: int, night_rows: int, seeds: list[int], pools: dict, performance: PerformanceConfig
) -> list[tuple[bool, bool]]:
    """Per night (drifted, undetermined): the champion's ROC-AUC on a registration holdout of ``holdout_rows``
    stationary rows against its ROC-AUC on the labeled rows of a night of ``night_rows`` rows."""
    concept, late_segment, on_time = PERFORMANCE_SETUPS[scenario]
    stationary, pool = pools[0.0], pools[concept]
    nights = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        holdout = rng.choice(POOL_ROWS, holdout_rows, replace=False)
        reference = metric_value("roc_auc", stationary.y[holdout], stationary.logit[holdout])
        rows = rng.choice(POOL_ROWS, night_rows, replace=False)
        late = pool.segments[late_segment][rows] if late_segment else np.zeros(night_rows, dtype=bool)
        rows = rows[labeled_on_the_night(late, on_time, rng)]
        verdict = performance_drift(pool.y[rows], pool.logit[rows], reference, "roc_auc", performance, seed=seed)
        nights.append((verdict.drifted, verdict.status == "undetermined"))
    return nights


# --- the gate --------------------------------------------------------------------------------------------


def noisy_auc(pool: Pool, sigma: float) -> float:
    """Population ROC-AUC of the champion's log-odds plus N(0, sigma) noise (fixed noise draw)."""
    noise = np.random.default_rng(0).normal(0.0, 1.0, len(pool.y))
    return metric_value("roc_auc", pool.y, pool.logit + sigma * noise)


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


def gate_retrains(sigma: float, size: int, seeds: list[int], pool: Pool, gates: Sequence[GateConfig]) -> list[tuple]:
    """Per retrain, whether each of ``gates`` promotes the challenger (one holdout judged by every gate)."""
    retrains = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        rows = rng.choice(POOL_ROWS, size, replace=False)
        y, logit = pool.y[rows], pool.logit[rows]
        champion = _sigmoid(logit + rng.normal(0.0, CHAMPION_SIGMA, size))
        challenger = _sigmoid(logit + rng.normal(0.0, sigma, size))
        retrains.append(tuple(decide_promotion(y, challenger, champion, "1", gate).passed for gate in gates))
    return retrains


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-logit))


# --- tuning ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """One tuned value: of its grid, the most powerful that keeps within target every cell some value can."""

    name: str
    value: float
    shipped: float
    target: float
    worst: dict[float, float]  # grid value -> the worst rate over those cells (tuning seeds)
    beyond: dict[str, float]  # cell -> its lowest rate, for the cells no grid value keeps within target


def first_within(rates: dict[float, float], preferred: Sequence[float], target: float) -> float | None:
    """The first value of ``preferred`` whose rate is within ``target``; None when none is."""
    return next((value for value in preferred if rates[value] <= target), None)


def choose(
    name: str, curves: dict[str, np.ndarray], preferred: Sequence[float], target: float, shipped: float
) -> Choice:
    """``curves``: cell -> its rate at each grid value (grid order). A cell no value keeps within target says
    nothing about which value to take; with no value left, the shipped one stays."""
    grid = sorted(preferred)
    beyond = {cell: float(curve.min()) for cell, curve in curves.items() if curve.min() > target}
    fixable = [curve for cell, curve in curves.items() if cell not in beyond]
    worst = dict(zip(grid, np.max(fixable, axis=0), strict=True)) if fixable else {}
    value = first_within(worst, preferred, target) if worst else None
    return Choice(name, shipped if value is None else value, shipped, target, worst, beyond)


def tune(args: argparse.Namespace, pools: dict, cases: dict, shipped: PipelineConfig) -> tuple[Choice, Choice]:
    """On the tuning seeds: the largest ``drift.false_alarm_rate`` that keeps stationary nights within the
    false-alarm target, and the smallest ``gate.confidence`` that keeps equal promotions within theirs."""
    drifts = [replace(shipped.drift, false_alarm_rate=level) for level in FALSE_ALARM_RATE_GRID]
    gates = [replace(shipped.gate, confidence=confidence) for confidence in CONFIDENCE_GRID]
    tasks = []
    for name in TUNED_ON:
        for size in args.rates if name in NIGHTLY_NAMES else args.sizes:
            for seeds in seed_chunks(TUNING_SEEDS, BLOCKS[name], size, args.nights):
                tasks.append(((name, size), data_nights, (name, size, seeds, drifts)))
    for size in gate_sizes(args, shipped.training):
        for seeds in seed_chunks(TUNING_SEEDS, GATE_BLOCK, size, args.retrains):
            tasks.append((("equal", size), gate_retrains, (cases["equal"][0], size, seeds, pools[0.0], gates)))
    rates = run_cells(tasks, args.jobs)
    stationary = {cell_name(*key): curve for key, curve in rates.items() if key[0] != "equal"}
    equal = {f"equal at {key[1]:,} holdout rows": curve for key, curve in rates.items() if key[0] == "equal"}
    level = choose(
        "drift.false_alarm_rate",
        stationary,
        FALSE_ALARM_RATE_GRID[::-1],
        FALSE_ALARM_TARGET,
        shipped.drift.false_alarm_rate,
    )
    confidence = choose("gate.confidence", equal, CONFIDENCE_GRID, GATE_EQUAL_TARGET, shipped.gate.confidence)
    return level, confidence


def cell_name(scenario: str, size: int) -> str:
    unit = "a day" if scenario in NIGHTLY_NAMES else "rows each"
    return f"{scenario} at {size:,} {unit}"


# --- running and reporting -------------------------------------------------------------------------------


def seed_chunks(phase: int, block: int, size: int, count: int) -> list[list[int]]:
    """``count`` seeds of one cell in tasks of ``NIGHTS_PER_TASK`` (so the cores share a long cell evenly)."""
    offset = phase + block * 1_000_000 + size
    return [
        list(range(start, min(start + NIGHTS_PER_TASK, offset + count)))
        for start in range(offset, offset + count, NIGHTS_PER_TASK)
    ]


def run_cells(tasks: list[tuple[tuple, Callable, tuple]], jobs: int) -> dict[tuple, np.ndarray]:
    """Run ``(key, function, args)`` tasks in ``jobs`` processes. A task gives a tuple of outcomes per night (or
    retrain); per key, the share of True of each outcome."""
    from joblib import Parallel, delayed

    outcomes = Parallel(n_jobs=jobs)(delayed(function)(*args) for _, function, args in tasks)
    totals: dict[tuple, list] = {}
    for (key, _, _), outcome in zip(tasks, outcomes, strict=True):
        totals.setdefault(key, []).extend(outcome)
    return {key: np.mean(np.array(values, dtype=float), axis=0) for key, values in totals.items()}


def gate_sizes(args: argparse.Namespace, training: TrainingConfig) -> list[int]:
    return sorted({*args.gate_sizes, *(holdout_size(rate, training) for rate in args.rates)})


def measured_sizes(scenario: Scenario, args: argparse.Namespace) -> list[int]:
    """Rows a day for the nightly shape; i.i.d. performance drift up to ``PERFORMANCE_MAX_ROWS``."""
    if scenario.name in NIGHTLY_NAMES:
        return args.rates
    if scenario.detector == "performance":
        return [size for size in args.sizes if size <= PERFORMANCE_MAX_ROWS]
    return args.sizes


def night_task(scenario: Scenario, size: int, seeds: list[int], pools: dict, config: PipelineConfig) -> tuple:
    if scenario.detector == "data":
        return data_nights, (scenario.name, size, seeds, [config.drift])
    holdout = holdout_size(size, config.training) if scenario.name in NIGHTLY_NAMES else size
    return performance_nights, (scenario.name, holdout, size, seeds, pools, config.performance)


def report_tasks(args: argparse.Namespace, pools: dict, cases: dict, config: PipelineConfig) -> list:
    """Every cell of the report, and the first ``--report-nights`` nights of every data-drift cell again
    through the full Evidently report (keys starting with "agree")."""
    tasks = []
    for scenario in (*IID_DATA, *IID_PERFORMANCE, *NIGHTLY):
        for size in measured_sizes(scenario, args) if scenario.name not in SWEPT_ROWS else []:
            for seeds in seed_chunks(REPORT_SEEDS, BLOCKS[scenario.name], size, args.nights):
                tasks.append(((scenario.name, size), *night_task(scenario, size, seeds, pools, config)))
    for number, (shape, size) in enumerate(shift_cells(args)):
        for seeds in seed_chunks(REPORT_SEEDS, SHIFT_BLOCK + number, size, args.nights):
            tasks.append((("shift", shape, size), shift_nights, (shape, size, seeds, config.drift)))
    for case, (sigma, _) in cases.items():
        for size in gate_sizes(args, config.training):
            for seeds in seed_chunks(REPORT_SEEDS, GATE_BLOCK, size, args.retrains):
                tasks.append((("gate", case, size), gate_retrains, (sigma, size, seeds, pools[0.0], [config.gate])))
    for scenario in (s for s in (*IID_DATA, *NIGHTLY) if s.detector == "data"):
        for size in measured_sizes(scenario, args):
            seeds = seed_chunks(REPORT_SEEDS, BLOCKS[scenario.name], size, args.report_nights)[0]
            tasks.append((("agree", scenario.name, size), report_agrees, (scenario.name, size, seeds, config.drift)))
    return tasks


def shift_cells(args: argparse.Namespace) -> list[tuple[str, int]]:
    return [("i.i.d.", size) for size in args.sizes] + ([("nightly", DEMO_RATE)] if DEMO_RATE in args.rates else [])


def swept_rows(rates: dict, sizes: list[int]) -> dict[tuple, np.ndarray]:
    """The i.i.d. table's shifted generator rows, read off the smallest-shift nights at their shift."""
    order = [(column, shift) for column, shifts in SHIFT_GRID.items() for shift in shifts]
    return {
        (name, size): rates["shift", "i.i.d.", size][[order.index(shift)]]
        for name, shift in SWEPT_ROWS.items()
        for size in sizes
    }


def print_tuning(choices: Sequence[Choice]) -> None:
    print("\ntuning seeds (disjoint from the report seeds below)")
    for choice in choices:
        measure = "worst false-alarm rate" if choice.name.startswith("drift") else "worst equal promotion rate"
        grid = "  ".join(f"{value:g}: {rate:.1%}" for value, rate in choice.worst.items())
        verdict = "as shipped" if choice.value == choice.shipped else f"DIFFERS from the shipped {choice.shipped:g}"
        print(f"{choice.name:<23} {measure} (target <= {choice.target:.0%}): {grid}")
        print(f"{'':<23} chosen {choice.value:g} ({verdict})")
        for cell, rate in choice.beyond.items():
            print(f"{'':<23} left out, no value within target: {cell} ({rate:.1%} at best)")


def rate_text(rates: np.ndarray | None) -> str:
    """An alarm rate; † when the check had no verdict on some nights (performance: too few labels); - not run."""
    if rates is None:
        return "- "
    return f"{rates[0]:.1%}" + ("†" if len(rates) > 1 and rates[1] > 0 else " ")


def print_rate_table(title: str, scenarios: Sequence[Scenario], rates: dict, sizes: list[int]) -> None:
    header = f"{'detector':<17} {'scenario':<42} {'target':<10}" + "".join(f"{size:>10,}" for size in sizes)
    print(f"\n{title}\n{header}\n" + "-" * len(header))
    for scenario in scenarios:
        target = f"<= {FALSE_ALARM_TARGET:.0%}" if scenario.stationary else f">= {DETECTION_TARGET:.0%}*"
        cells = "".join(f"{rate_text(rates.get((scenario.name, size))):>10}" for size in sizes)
        print(f"{scenario.detector + ' drift':<17} {scenario.name:<42} {target:<10}{cells}")


def smallest_alarming(shifts: Sequence[float], rates: Sequence[float], level: float) -> float | None:
    """The smallest of ``shifts`` (rising) whose alarm rate reaches ``level``; None when none does."""
    return next((shift for shift, rate in zip(shifts, rates, strict=True) if rate >= level), None)


def shift_text(shifts: Sequence[float], rates: Sequence[float], level: float) -> str:
    """The smallest shift of the grid that alarms on ``level`` of the nights, as the table prints it."""
    found = smallest_alarming(shifts, rates, level)
    if found is None:
        return f"> {shifts[-1]:g}"
    return f"<= {found:g}" if found == shifts[0] else f"{found:g}"


def print_shift_table(rates: dict, args: argparse.Namespace, config: PipelineConfig) -> None:
    columns = [(column, level) for column in SHIFT_GRID for level in SHIFT_LEVELS]
    units = {"Age": "Age sd", "Vehicle_Damage": "Damage pts"}
    header = f"{'windows':<34}" + "".join(f"{f'{units[c]} @{level:.0%}':>16}" for c, level in columns)
    print("\nsmallest shift that alarms at each size, on 50% and on 95% of the nights (no target; both windows are")
    print(f"sampled to drift.max_rows {config.drift.max_rows:,}); grid: Age in reference sd {SHIFT_GRID['Age']},")
    print(f"Vehicle_Damage 'Yes' share in points {SHIFT_GRID['Vehicle_Damage']}")
    print(header + "\n" + "-" * len(header))
    for shape, size in shift_cells(args):
        outcome = iter(rates["shift", shape, size])
        by_column = {column: [next(outcome) for _ in shifts] for column, shifts in SHIFT_GRID.items()}
        label = f"{size:,} rows each" if shape == "i.i.d." else f"nightly: {size:,} a day vs {REFERENCE_DAYS} days"
        texts = (shift_text(SHIFT_GRID[c], by_column[c], level) for c, level in columns)
        print(f"{label:<34}" + "".join(f"{text:>16}" for text in texts))


def print_gate_table(rates: dict, sizes: list[int], cases: dict, champion_auc: float) -> None:
    header = f"{'challenger':<10} {'population ROC-AUC':<28} {'target':<8}" + "".join(f"{s:>10,}" for s in sizes)
    print("\npromotion rate per retrain (size = holdout rows)\n" + header + "\n" + "-" * len(header))
    for case, (_, auc) in cases.items():
        truth, target = f"{auc:.4f} (champion {champion_auc:.4f})", GATE_TARGETS.get(case, "-")
        print(f"{case:<10} {truth:<28} {target:<8}" + "".join(f"{rates['gate', case, s][0]:>10.1%}" for s in sizes))
    print(f"* at {GATE_BETTER_AT:,} holdout rows")


def drift_summary(rates: dict, sizes: list[int]) -> tuple[float, float, list[str]]:
    cells = [(s, size) for s in (*IID_DATA, *IID_PERFORMANCE) for size in sizes if (s.name, size) in rates]
    false_alarm = max(rates[s.name, size][0] for s, size in cells if s.stationary)
    detected = [rates[s.name, size][0] for s, size in cells if not s.stationary and size >= DETECTION_FROM]
    detection = min(detected) if detected else float("nan")
    misses = (
        [f"i.i.d. false alarms {false_alarm:.1%} > {FALSE_ALARM_TARGET:.0%}"]
        if false_alarm > FALSE_ALARM_TARGET
        else []
    )
    if not detection >= DETECTION_TARGET:
        misses.append(f"i.i.d. detection {detection:.1%} < {DETECTION_TARGET:.0%} from {DETECTION_FROM:,} rows")
    return false_alarm, detection, misses


def nightly_summary(rates: dict, sizes: list[int]) -> tuple[float, list[str]]:
    cells = {(s.name, size): rates[s.name, size][0] for s in NIGHTLY for size in sizes}
    misses = [
        f"nightly {name} at {size:,} a day: {rate:.1%} > {FALSE_ALARM_TARGET:.0%}"
        for (name, size), rate in cells.items()
        if rate > FALSE_ALARM_TARGET
    ]
    return max(cells.values()), misses


def gate_summary(rates: dict, sizes: list[int], retrains: int) -> tuple[int, float, float, list[str]]:
    worse = sum(round(rates["gate", "worse", size][0] * retrains) for size in sizes)
    equal = max(rates["gate", "equal", size][0] for size in sizes)
    better = rates["gate", "better", GATE_BETTER_AT][0] if GATE_BETTER_AT in sizes else float("nan")
    misses = [
        f"gate: worse promoted {rates['gate', 'worse', size][0]:.1%} at {size:,} holdout rows, target never"
        for size in sizes
        if rates["gate", "worse", size][0] > 0
    ]
    misses += [
        f"gate: equal promoted {rates['gate', 'equal', size][0]:.1%} at {size:,} holdout rows > {GATE_EQUAL_TARGET:.0%}"
        for size in sizes
        if rates["gate", "equal", size][0] > GATE_EQUAL_TARGET
    ]
    if not better >= GATE_BETTER_TARGET:
        misses.append(f"gate: better promoted {better:.1%} at {GATE_BETTER_AT:,} rows < {GATE_BETTER_TARGET:.0%}")
    return worse, equal, better, misses


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--nights", type=int, default=100, help="nights per scenario and size, in each phase")
    parser.add_argument("--retrains", type=int, default=100, help="retrains per gate case and holdout size")
    parser.add_argument("--sizes", type=int_list, default="1000,10000,100000", help="i.i.d. window sizes (rows)")
    parser.add_argument("--rates", type=int_list, default="200,1000,10000", help="nightly shape: rows a day")
    parser.add_argument("--gate-sizes", type=int_list, default="1000,10000", help="holdout sizes besides the nightly")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--report-nights", type=int, default=2, help="nights per cell re-run as a full report")
    return parser.parse_args(argv)


def print_report(rates: dict, args: argparse.Namespace, cases: dict, pools: dict, config: PipelineConfig) -> None:
    drift, gate, training = config.drift, config.gate, config.training
    print(f"\nreport seeds, drift.false_alarm_rate {drift.false_alarm_rate:g} and gate.confidence {gate.confidence:g}")
    iid = (*IID_DATA, *IID_PERFORMANCE)
    print_rate_table("alarm rate per night (size = rows in each window)", iid, rates, args.sizes)
    print(f"* detection target from {DETECTION_FROM:,} rows")
    print_rate_table("nightly shape: alarm rate per night (size = rows a day)", NIGHTLY, rates, args.rates)
    holdouts = ", ".join(f"{rate:,} -> {holdout_size(rate, training):,}" for rate in args.rates)
    most = f"{training.max_holdout_rows:,}" if training.max_holdout_rows else "none"
    share, least = training.holdout_share, training.min_holdout_rows
    print(f"registration holdout rows per rows a day: {holdouts} (core.windows.holdout_size: holdout_share")
    print(f"{share:g}, at least min_holdout_rows {least:,}, at most max_holdout_rows {most})")
    print(
        f"† no verdict on some nights: fewer labeled rows than performance.min_labels ({config.performance.min_labels})"
    )
    print_shift_table(rates, args, config)
    print_gate_table(rates, gate_sizes(args, training), cases, noisy_auc(pools[0.0], CHAMPION_SIGMA))
    print(f"the holdout one night gives, per rows a day: {holdouts}")


def summarize(
    rates: dict, args: argparse.Namespace, cases: dict, config: PipelineConfig, choices: Sequence[Choice]
) -> list[str]:
    """Print the summary lines; the targets missed on the report seeds."""
    agreement = [share[0] for key, share in rates.items() if key[0] == "agree"]
    checked, agreed = args.report_nights * len(agreement), round(sum(agreement) * args.report_nights)
    print(f"\nthe full Evidently report gave the same per-column verdicts on {agreed} of {checked} nights re-run")
    sizes = gate_sizes(args, config.training)
    false_alarm, detection, misses = drift_summary(rates, args.sizes)
    nightly_false_alarm, nightly_misses = nightly_summary(rates, args.rates)
    worse, equal, better, gate_misses = gate_summary(rates, sizes, args.retrains)
    misses += (
        nightly_misses + gate_misses + ([f"report disagreed on {checked - agreed} nights"] if agreed < checked else [])
    )
    print(
        "targets: met" if not misses else "targets missed on the report seeds:\n" + "\n".join(f"- {m}" for m in misses)
    )
    nights = args.nights * sum((s.name, size) in rates for s in (*IID_DATA, *IID_PERFORMANCE) for size in args.sizes)
    print(f"calibration: false_alarm_max={false_alarm:.3f} detection_min={detection:.3f} nights={nights}")
    retrains = args.retrains * len(sizes) * len(cases)
    print(f"gate: worse_promoted={worse} equal_promoted={equal:.3f} better_promoted={better:.3f} retrains={retrains}")
    level, confidence = choices
    print(
        f"calibration-oos: tuned=false_alarm_rate:{level.value:g},confidence:{confidence.value:g} "
        f"as_shipped={'yes' if all(c.value == c.shipped for c in choices) else 'no'} "
        f"false_alarm_max={false_alarm:.3f} nightly_false_alarm_max={nightly_false_alarm:.3f} "
        f"equal_promoted_max={equal:.3f} tuning_false_alarm_max={level.worst.get(level.value, math.nan):.3f} "
        f"tuning_equal_promoted_max={confidence.worst.get(confidence.value, math.nan):.3f} "
        f"targets={'missed' if misses else 'met'}"
    )
    return misses


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    def progress(step: str) -> None:
        print(f"{step} at {time.perf_counter() - started:.0f} s", flush=True)

    shipped = load_config()
    pools = scored_pools(shipped)
    cases = gate_cases(pools[0.0])
    progress(f"champion trained and {len(pools)} pools scored")
    choices = tune(args, pools, cases, shipped)
    progress("tuning done")
    level, confidence = choices
    config = load_config({"drift": {"false_alarm_rate": level.value}, "gate": {"confidence": confidence.value}})
    rates = run_cells(report_tasks(args, pools, cases, config), args.jobs)
    rates |= swept_rows(rates, args.sizes)
    progress("report done")
    print_tuning(choices)
    print_report(rates, args, cases, pools, config)
    misses = summarize(rates, args, cases, config, choices)
    print(f"wall time {time.perf_counter() - started:.0f} s")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
