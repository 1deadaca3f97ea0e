"""Champion vs challenger on the same holdout, and the promotion gate.

The champion is re-scored on today's holdout, never judged by a metric it logged months ago. The
gate asks three things: the challenger clears the absolute floor, beats the champion by the margin,
and does so in at least ``confidence`` of bootstrap resamples of the holdout (paired: both models
are scored on the same resampled rows), so a lucky split does not move the champion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from include.retraining.core.config import GateConfig
from include.retraining.core.records import Evaluation


def _label_metric(function: Callable) -> Callable[[np.ndarray, np.ndarray], float]:
    return lambda y, scores: float(function(y, (scores >= 0.5).astype(int), zero_division=0))


METRIC_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda y, scores: float(accuracy_score(y, (scores >= 0.5).astype(int))),
    "precision": _label_metric(precision_score),
    "recall": _label_metric(recall_score),
    "f1": _label_metric(f1_score),
    "roc_auc": lambda y, scores: float(roc_auc_score(y, scores)),
}


def positive_scores(model: Any, features: pd.DataFrame, positive_class: int = 1) -> np.ndarray:
    classes = list(model.classes_)
    return model.predict_proba(features)[:, classes.index(positive_class)]


def score(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {name: function(y, scores) for name, function in METRIC_FUNCTIONS.items()}


def win_share(y: np.ndarray, challenger: np.ndarray, champion: np.ndarray, gate: GateConfig) -> float:
    """Share of paired bootstrap resamples in which the challenger beats the champion by the margin."""
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


def decide_promotion(
    y: np.ndarray,
    challenger_scores: np.ndarray,
    champion_scores: np.ndarray | None,
    champion_version: str | None,
    gate: GateConfig,
) -> Evaluation:
    primary = gate.primary_metric
    challenger = score(y, challenger_scores)
    value = challenger[primary]
    unchallenged = {
        "primary_metric": primary,
        "challenger": challenger,
        "champion": None,
        "champion_version": champion_version,
        "improvement": None,
        "confidence": None,
    }
    if value < gate.floor:
        reason = f"challenger {primary} {value:.4f} is below the floor {gate.floor:.4f}"
        return Evaluation(**unchallenged, passed=False, reason=reason)
    if champion_scores is None:
        reason = f"no champion yet; challenger {primary} {value:.4f} clears the floor {gate.floor:.4f}"
        return Evaluation(**unchallenged, passed=True, reason=reason)

    champion = score(y, champion_scores)
    improvement = value - champion[primary]
    confidence = win_share(y, challenger_scores, champion_scores, gate)
    passed = improvement >= gate.min_improvement and confidence >= gate.confidence
    reason = (
        f"challenger {primary} {value:.4f} {'beats' if passed else 'does not beat'} champion "
        f"v{champion_version} {champion[primary]:.4f}: improvement {improvement:+.4f} "
        f"(needs >= {gate.min_improvement:.4f}), wins {confidence:.1%} of the bootstrap resamples "
        f"(needs >= {gate.confidence:.1%})"
    )
    compared = unchallenged | {"champion": champion, "improvement": improvement, "confidence": confidence}
    return Evaluation(**compared, passed=passed, reason=reason)
