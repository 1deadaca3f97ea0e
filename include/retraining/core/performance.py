"""Performance drift (concept drift): has the champion got worse on the rows whose labels arrived?

The champion's score on the new labeled rows is compared with its holdout score at registration. The
current score is uncertain (often a few hundred labels), so the verdict uses a bootstrap bound: drift
when even the upper bound of the current score, at ``performance.confidence`` one-sided,
is more than ``performance.max_drop`` below the reference. ``make calibrate`` measures the false-alarm
rate of this rule on stationary nights and its detection of a concept-only change.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from include.retraining.core.config import PerformanceConfig
from include.retraining.core.evaluation import METRIC_FUNCTIONS, weighted_metric
from include.retraining.core.records import PerformanceDrift


def performance_drift(
    y: np.ndarray,
    champion_scores: np.ndarray,
    reference_value: float | None,
    metric: str,
    performance: PerformanceConfig,
    positive_class: object = 1,
    seed: int = 0,
) -> PerformanceDrift:
    """A verdict on the champion's ``metric`` over labeled rows; rows with a missing label or score are ignored."""
    y, scores = _labeled(y, champion_scores)
    positive = y == positive_class
    undetermined = {"metric": metric, "current_value": None, "lower": None, "upper": None, "labeled_rows": len(y)}
    if reference_value is None or not math.isfinite(reference_value):
        reason = f"the champion has no finite {metric} from registration to compare with"
        return PerformanceDrift(status="undetermined", reference_value=None, reason=reason, **undetermined)
    undetermined["reference_value"] = reference_value
    if len(y) < performance.min_labels:
        reason = f"{len(y)} labeled rows, performance.min_labels needs {performance.min_labels}"
        return PerformanceDrift(status="undetermined", reason=reason, **undetermined)
    if positive.all() or not positive.any():
        reason = f"all {len(y)} labeled rows have one class: {metric} is undefined"
        return PerformanceDrift(status="undetermined", reason=reason, **undetermined)

    interval = bootstrap_interval(positive, scores, metric, performance, seed)
    if interval is None:
        reason = f"every bootstrap resample of the {len(y)} labeled rows had one class: {metric} is undefined"
        return PerformanceDrift(status="undetermined", reason=reason, **undetermined)
    lower, upper = interval
    current = METRIC_FUNCTIONS[metric](positive.astype(int), scores)
    drifted = upper < reference_value - performance.max_drop
    reason = (
        f"champion {metric} {current:.4f} on {len(y)} labeled rows (upper bound {upper:.4f} at "
        f"{performance.confidence:.0%}) vs {reference_value:.4f} at registration: "
        f"{'a drop beyond' if drifted else 'within'} the tolerated {performance.max_drop:.4f}"
    )
    status = "drift" if drifted else "no_drift"
    return PerformanceDrift(
        status=status,
        metric=metric,
        reference_value=reference_value,
        current_value=current,
        lower=lower,
        upper=upper,
        labeled_rows=len(y),
        reason=reason,
    )


def _labeled(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, scores = np.asarray(y, dtype=object), np.asarray(scores, dtype=float)
    keep = ~pd.isna(y) & np.isfinite(scores)
    return y[keep], scores[keep]


def bootstrap_interval(
    positive: np.ndarray, scores: np.ndarray, metric: str, performance: PerformanceConfig, seed: int
) -> tuple[float, float] | None:
    """The ``1 - confidence`` and ``confidence`` quantiles of the metric over bootstrap resamples."""
    weighted = weighted_metric(metric, positive, scores)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(performance.bootstrap_rounds):
        counts = np.bincount(rng.integers(0, len(positive), len(positive)), minlength=len(positive))
        drawn = int(counts[positive].sum())
        if 0 < drawn < len(positive):  # a one-class resample has no ROC-AUC: skip it
            values.append(weighted(counts))
    if not values:
        return None
    low, high = np.quantile(values, [1 - performance.confidence, performance.confidence])
    return float(low), float(high)
