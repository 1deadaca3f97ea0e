"""Performance drift (concept drift): has the champion got worse on the rows whose labels arrived?

The champion's score on the new labeled rows is compared with its holdout score at registration, in the
metric's direction. The current score is uncertain (often a few hundred labels), so the verdict uses a
bootstrap bound: drift when even the most favourable bound of the current score, at
``performance.confidence`` one-sided, is worse than the reference by more than ``performance.max_drop``
(in the metric's units). ``make calibrate`` measures the false-alarm rate of this rule on stationary
nights and its detection of a concept-only change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from include.retraining.core.config import ContractConfig, PerformanceConfig, lower_is_better
from include.retraining.core.evaluation import metric_value, predict, targets, weighted_metric
from include.retraining.core.records import PerformanceDrift
from include.retraining.core.scoring import served_scores


def performance_drift(
    y: np.ndarray,
    predictions: np.ndarray,
    reference_value: float | None,
    metric: str,
    performance: PerformanceConfig,
    seed: int = 0,
) -> PerformanceDrift:
    """A verdict on the champion's ``metric`` over labeled rows. ``y`` and ``predictions`` are what
    ``evaluation.targets`` and ``evaluation.predict`` give for the objective; rows with a missing label or
    a non-finite prediction are ignored (and not counted as labeled)."""
    y, predictions = _labeled(y, predictions)
    if early := premature(reference_value, len(y), metric, performance):
        return early
    undetermined = {
        "metric": metric,
        "reference_value": reference_value,
        "current_value": None,
        "lower": None,
        "upper": None,
        "labeled_rows": len(y),
    }
    current = metric_value(metric, y, predictions)
    interval = bootstrap_interval(y, predictions, metric, performance, seed) if math.isfinite(current) else None
    if interval is None:
        why = "have a single label value (one class)" if len(np.unique(y)) < 2 else "do not define it"
        reason = f"all {len(y)} labeled rows {why}: {metric} is undefined"
        return PerformanceDrift(status="undetermined", reason=reason, **undetermined)
    lower, upper = interval
    worse_than_tolerated = (
        lower > reference_value + performance.max_drop
        if lower_is_better(metric)
        else upper < reference_value - performance.max_drop
    )
    bound = f"lower bound {lower:.4f}" if lower_is_better(metric) else f"upper bound {upper:.4f}"
    reason = (
        f"champion {metric} {current:.4f} on {len(y)} labeled rows ({bound} at {performance.confidence:.0%}) "
        f"vs {reference_value:.4f} at registration: "
        f"{'worse beyond' if worse_than_tolerated else 'within'} the tolerated {performance.max_drop:.4f}"
    )
    return PerformanceDrift(
        status="drift" if worse_than_tolerated else "no_drift",
        metric=metric,
        reference_value=reference_value,
        current_value=current,
        lower=lower,
        upper=upper,
        labeled_rows=len(y),
        reason=reason,
    )


def assess_champion(
    load_model: Callable[[], Any],
    labeled: pd.DataFrame,
    contract: ContractConfig,
    reference_value: float | None,
    metric: str,
    performance: PerformanceConfig,
    served: Mapping[str, Any] | None = None,
    id_field: str = "_id",
) -> PerformanceDrift:
    """The champion's predictions for the labeled rows it never saw, against ``reference_value`` (its holdout
    score at registration). ``served``: document id -> the score the score DAG served for it
    (``core.scoring``); the rows never served are re-scored, with ``load_model`` called only then."""
    if early := premature(reference_value, len(labeled), metric, performance):
        return early
    predictions, from_served = champion_predictions(load_model, labeled, contract, served or {}, id_field)
    y = targets(contract.label, labeled[contract.label.name])
    verdict = performance_drift(y, predictions, reference_value, metric, performance)
    source = f"{from_served:,} served predictions, {len(labeled) - from_served:,} re-scored"
    return replace(verdict, served_rows=from_served, reason=f"{verdict.reason} ({source})")


def champion_predictions(
    load_model: Callable[[], Any],
    labeled: pd.DataFrame,
    contract: ContractConfig,
    served: Mapping[str, Any],
    id_field: str,
) -> tuple[np.ndarray, int]:
    """The champion's prediction per row, as served where it was, re-scored elsewhere; and how many were served."""
    values, found = served_scores(labeled[id_field], served, contract.label)
    if found.all():
        return values, len(values)
    rescored = predict(load_model(), labeled.loc[~found, contract.feature_names], contract.label)
    predictions = np.empty((len(labeled), *rescored.shape[1:]))
    predictions[found], predictions[~found] = values, rescored
    return predictions, int(found.sum())


def premature(
    reference_value: float | None, labeled_rows: int, metric: str, performance: PerformanceConfig
) -> PerformanceDrift | None:
    """The undetermined verdict when there is nothing to compare with or too few labels, decided before
    anyone loads the champion to score it; None when the check can run."""
    fields = {"metric": metric, "current_value": None, "lower": None, "upper": None, "labeled_rows": labeled_rows}
    if reference_value is None or not math.isfinite(reference_value):
        reason = f"the champion has no finite {metric} from registration to compare with"
        return PerformanceDrift(status="undetermined", reference_value=None, reason=reason, **fields)
    if labeled_rows < performance.min_labels:
        reason = f"{labeled_rows} labeled rows, performance.min_labels needs {performance.min_labels}"
        return PerformanceDrift(status="undetermined", reference_value=reference_value, reason=reason, **fields)
    return None


def _labeled(y: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, predictions = np.asarray(y, dtype=float), np.asarray(predictions, dtype=float)
    finite = np.isfinite(predictions) if predictions.ndim == 1 else np.isfinite(predictions).all(axis=1)
    keep = np.isfinite(y) & finite
    return y[keep], predictions[keep]


def bootstrap_interval(
    y: np.ndarray, predictions: np.ndarray, metric: str, performance: PerformanceConfig, seed: int
) -> tuple[float, float] | None:
    """The ``1 - confidence`` and ``confidence`` quantiles of the metric over bootstrap resamples; a
    resample on which the metric is undefined (one class) is skipped; None if every one was."""
    weighted = weighted_metric(metric, y, predictions)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(performance.bootstrap_rounds):
        counts = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y))
        if (value := weighted(counts)) is not None:
            values.append(value)
    if not values:
        return None
    low, high = np.quantile(values, [1 - performance.confidence, performance.confidence])
    return float(low), float(high)
