"""Today's (eb49517) implementations, kept only as baselines for the benchmarks and the equivalence tests."""

from __future__ import annotations

import numpy as np

from include.retraining.core.config import GateConfig
from include.retraining.core.evaluation import METRIC_FUNCTIONS


def loop_win_share(y: np.ndarray, challenger: np.ndarray, champion: np.ndarray, gate: GateConfig) -> float:
    """The paired bootstrap as a Python loop calling the sklearn metric on every materialised resample."""
    metric = METRIC_FUNCTIONS[gate.primary_metric]
    rng = np.random.default_rng(0)
    wins = rounds = 0
    for _ in range(gate.bootstrap_rounds):
        rows = rng.integers(0, len(y), len(y))
        if len(np.unique(y[rows])) < 2:  # ROC-AUC is undefined on one class
            continue
        rounds += 1
        wins += metric(y[rows], challenger[rows]) - metric(y[rows], champion[rows]) >= gate.min_improvement
    return wins / rounds if rounds else 0.0
