"""Performance drift on constructed data: a real model's scores on breast_cancer, labels kept or changed."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from include.retraining.core.config import PerformanceConfig
from include.retraining.core.evaluation import METRIC_FUNCTIONS
from include.retraining.core.performance import bootstrap_interval, performance_drift

SETTINGS = PerformanceConfig()


@pytest.fixture(scope="module")
def scored():
    """(labels, scores) of a logistic regression on breast_cancer rows it did not train on."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.6, random_state=0, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01)).fit(x_train, y_train)
    return y_test, model.predict_proba(x_test)[:, 1]


def test_the_same_quality_is_no_drift(scored):
    y, scores = scored
    reference = METRIC_FUNCTIONS["roc_auc"](y, scores)

    result = performance_drift(y, scores, reference, "roc_auc", SETTINGS)

    assert result.status == "no_drift"
    assert result.current_value == pytest.approx(reference)
    assert result.lower <= result.current_value <= result.upper
    assert result.labeled_rows == len(y)


def test_a_concept_change_is_drift(scored):
    """A third of the labels flipped (the relation changed, the inputs did not)."""
    y, scores = scored
    reference = METRIC_FUNCTIONS["roc_auc"](y, scores)
    flipped = y.copy()
    flipped[::3] = 1 - flipped[::3]

    result = performance_drift(flipped, scores, reference, "roc_auc", SETTINGS)

    assert result.status == "drift"
    assert result.upper < reference - SETTINGS.max_drop
    assert "worse beyond the tolerated 0.0200" in result.reason


def test_a_drop_within_the_tolerance_is_no_drift(scored):
    y, scores = scored
    reference = METRIC_FUNCTIONS["roc_auc"](y, scores) + 0.015

    assert performance_drift(y, scores, reference, "roc_auc", SETTINGS).status == "no_drift"
    strict = replace(SETTINGS, max_drop=0.0)
    assert performance_drift(y, scores, reference, "roc_auc", strict).status == "drift"


def test_rows_without_label_or_score_are_ignored_and_counted(scored):
    y, scores = scored
    labels, values = y.astype(object), scores.copy()
    labels[:10] = None
    labels[10:15] = np.nan
    values[15:20] = np.nan

    result = performance_drift(labels, values, 0.99, "roc_auc", SETTINGS)

    assert result.labeled_rows == len(y) - 20
    assert result.status in {"drift", "no_drift"}


@pytest.mark.parametrize(
    ("labels", "reference", "reason"),
    [
        (np.ones(300, int), 0.9, "all 300 labeled rows have a single label value (one class): roc_auc is undefined"),
        (np.arange(150) % 2, 0.9, "150 labeled rows, performance.min_labels needs 200"),
        (np.arange(300) % 2, float("nan"), "the champion has no finite roc_auc from registration"),
        (np.arange(300) % 2, None, "the champion has no finite roc_auc from registration"),
    ],
)
def test_undetermined_windows_say_why_and_stay_json(labels, reference, reason):
    scores = np.linspace(0, 1, len(labels))

    result = performance_drift(labels, scores, reference, "roc_auc", SETTINGS)

    assert result.status == "undetermined"
    assert reason in result.reason
    assert not result.drifted
    json.dumps(result.to_dict(), allow_nan=False)  # no NaN reaches a JSON payload


def test_the_interval_narrows_with_more_rows(scored):
    y, scores = scored
    few = bootstrap_interval(y[:200], scores[:200], "roc_auc", SETTINGS, seed=0)
    many = bootstrap_interval(y, scores, "roc_auc", SETTINGS, seed=0)

    assert many[1] - many[0] < few[1] - few[0]


def test_lower_is_better_metrics_drift_upwards():
    """Regression on diabetes: a champion whose errors doubled has drifted in RMSE; the same one has not."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True)
    predictions = Ridge(alpha=0.1).fit(x[:200], y[:200]).predict(x[200:])
    truth = y[200:]
    reference = METRIC_FUNCTIONS["rmse"](truth, predictions)
    worse = truth + (truth - predictions)  # the same inputs, errors doubled: the relation moved away from the model
    loose = replace(SETTINGS, max_drop=1.0)

    same = performance_drift(truth, predictions, reference, "rmse", loose)
    drifted = performance_drift(worse, predictions, reference, "rmse", loose)

    assert same.status == "no_drift"
    assert drifted.status == "drift"
    assert drifted.lower > reference + 1.0
    assert "lower bound" in drifted.reason
