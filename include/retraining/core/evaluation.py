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
    """Share of paired bootstrap resamples in which the challenger beats the champion by the margin.

    A resample is a vector of row multiplicities (``bincount`` of the drawn rows), and each metric is
    computed from those weights in O(n) over rows sorted once, instead of materialising and re-sorting
    every resample: the same resamples and the same decisions as ``metric(y[rows], scores[rows])`` per
    round (asserted against that loop in the unit tests), about 20x faster on a 200k-row holdout.
    """
    y = np.asarray(y).astype(bool)
    weighted = _weighted_metric(gate.primary_metric, y, np.asarray(challenger), np.asarray(champion))
    rng = np.random.default_rng(0)
    wins = rounds = 0
    for _ in range(gate.bootstrap_rounds):
        counts = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y))
        positives = int(counts[y].sum())
        if positives == 0 or positives == len(y):  # one class only: ROC-AUC is undefined, skip the round
            continue
        rounds += 1
        challenger_value, champion_value = weighted(counts)
        wins += challenger_value - champion_value >= gate.min_improvement
    return wins / rounds if rounds else 0.0


def _weighted_metric(
    name: str, y: np.ndarray, challenger: np.ndarray, champion: np.ndarray
) -> Callable[[np.ndarray], tuple[float, float]]:
    """``counts -> (metric of challenger, metric of champion)`` on the rows weighted by ``counts``."""
    metrics = weighted_metric(name, y, challenger), weighted_metric(name, y, champion)
    return lambda counts: (metrics[0](counts), metrics[1](counts))


def weighted_metric(name: str, y: np.ndarray, scores: np.ndarray) -> Callable[[np.ndarray], float]:
    """``counts -> metric of scores`` on the rows weighted by ``counts`` (``y`` boolean), O(n) per call."""
    if name == "roc_auc":
        return _RankedScores(y, scores).roc_auc
    predicted = scores >= 0.5
    return lambda counts: _label_metric_from_counts(name, y, predicted, counts)


class _RankedScores:
    """Scores sorted once, ties grouped: ROC-AUC of any weighting of the rows in O(n).

    AUC = P(score of a positive > score of a negative) + 0.5 P(tie), over weighted pairs: for each group
    of tied scores, its positive weight times (negative weight below the group + half its own).
    """

    def __init__(self, y: np.ndarray, scores: np.ndarray) -> None:
        self.order = np.argsort(scores, kind="stable")
        ordered = scores[self.order]
        self.starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        self.positive = y[self.order]

    def roc_auc(self, counts: np.ndarray) -> float:
        weights = counts[self.order]
        positive = np.add.reduceat(np.where(self.positive, weights, 0), self.starts)
        negative = np.add.reduceat(np.where(self.positive, 0, weights), self.starts)
        below = np.cumsum(negative) - negative
        pairs = 2 * int(positive @ below) + int(positive @ negative)  # integers: exact
        return pairs / (2 * int(positive.sum()) * int(negative.sum()))


def _label_metric_from_counts(name: str, y: np.ndarray, predicted: np.ndarray, counts: np.ndarray) -> float:
    """Accuracy, precision, recall or F1 at the 0.5 threshold, rows weighted; 0 where undefined."""
    tp = int(counts[y & predicted].sum())
    fp = int(counts[~y & predicted].sum())
    fn = int(counts[y & ~predicted].sum())
    total = int(counts.sum())
    if name == "accuracy":
        return (total - fp - fn) / total
    if name == "precision":
        return tp / (tp + fp) if tp + fp else 0.0
    if name == "recall":
        return tp / (tp + fn) if tp + fn else 0.0
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


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
