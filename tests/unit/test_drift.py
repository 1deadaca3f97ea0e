"""Drift: reading Evidently's metrics, and a few real Evidently runs on small generated frames."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from include.retraining.core.drift import (
    DriftComputation,
    column_drift,
    column_threshold,
    column_verdicts,
    compute_drift,
    contingency_p_value,
    dataset_drifted,
    dataset_threshold,
    parse_metrics,
    sample,
)
from include.retraining.core.records import ColumnDrift

# Evidently's own noise: a regex literal in its source, and NaN-safe divisions in its p-value tests
pytestmark = [
    pytest.mark.filterwarnings("ignore:invalid escape sequence:SyntaxWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning"),
]


def count_metric(count: int, share: float) -> dict:
    """Shaped like ``snapshot.dict()["metrics"][i]`` of Evidently 0.7.23."""
    return {
        "id": "89f9ba20",
        "metric_name": "DriftedColumnsCount(columns=...,drift_share=0.3)",
        "config": {"type": "evidently:metric_v2:DriftedColumnsCount", "columns": ["..."], "drift_share": 0.3},
        "value": {"count": float(count), "share": share},
    }


def value_drift(column: str, method: str, threshold: float, value: float) -> dict:
    return {
        "id": f"id-{column}",
        "metric_name": f"ValueDrift(column={column},method={method},threshold={threshold})",
        "config": {
            "type": "evidently:metric_v2:ValueDrift",
            "column": column,
            "method": method,
            "threshold": threshold,
        },
        "value": value,
    }


# --- column_drift / parse_metrics -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "threshold", "score", "drifted"),
    [
        ("Wasserstein distance (normed)", 0.1, 0.35, True),
        ("Wasserstein distance (normed)", 0.1, 0.1, True),  # a distance drifts when it reaches the threshold
        ("Wasserstein distance (normed)", 0.1, 0.09, False),
        ("Jensen-Shannon distance", 0.1, 0.2, True),
        ("Jensen-Shannon distance", 0.1, 0.0, False),
        ("K-S p_value", 0.05, 0.001, True),  # a p-value drifts when it falls below the threshold
        ("K-S p_value", 0.05, 0.05, False),
        ("K-S p_value", 0.05, 0.9, False),
        ("chi-square p_value", 0.05, 0.01, True),
        ("Z-test p_value", 0.05, 0.3, False),
        ("ks", 0.001, 0.0005, True),  # a configured method is named by its registry name: still a p-value
        ("ks", 0.001, 0.5, False),
        ("chi2_contingency", 0.001, 0.0001, True),
    ],
)
def test_column_drift_semantics(method, threshold, score, drifted):
    config = {"type": "evidently:metric_v2:ValueDrift", "column": "Age", "method": method, "threshold": threshold}

    result = column_drift(config, score)

    assert result == ColumnDrift(column="Age", method=method, score=score, threshold=threshold, drifted=drifted)


def test_parse_metrics_reads_dataset_and_columns():
    metrics = [
        count_metric(2, 2 / 3),
        value_drift("Age", "Wasserstein distance (normed)", 0.1, 1.2),
        value_drift("Gender", "Jensen-Shannon distance", 0.1, 0.01),
        value_drift("Vintage", "K-S p_value", 0.05, 1e-6),
        {"config": {"type": "evidently:metric_v2:MissingValueCount", "column": "Age"}, "value": {"count": 0}},
    ]

    share, count, columns = parse_metrics(metrics)

    assert share == pytest.approx(2 / 3)
    assert count == 2
    assert [c.column for c in columns] == ["Age", "Gender", "Vintage"]
    assert [c.drifted for c in columns] == [True, False, True]
    assert columns[2].method == "K-S p_value"
    assert columns[2].threshold == 0.05
    assert isinstance(count, int)


def test_parse_metrics_without_any_drift():
    share, count, columns = parse_metrics(
        [count_metric(0, 0.0), value_drift("Age", "Wasserstein distance (normed)", 0.1, 0.02)]
    )

    assert (share, count) == (0.0, 0)
    assert not columns[0].drifted


def test_parse_metrics_refuses_a_disagreeing_count():
    # Evidently says one column drifted, our reading of the p-value says none did
    metrics = [
        count_metric(1, 0.5),
        value_drift("Age", "K-S p_value", 0.05, 0.5),
        value_drift("Gender", "K-S p_value", 0.05, 0.2),
    ]

    with pytest.raises(RuntimeError, match="Evidently counted 1 drifted columns, the per-column results say 0"):
        parse_metrics(metrics)


def test_dataset_drifted_at_the_threshold():
    assert dataset_drifted(0.3, 0.3)
    assert dataset_drifted(0.5, 0.3)
    assert not dataset_drifted(0.2, 0.3)


def test_sample_caps_rows_reproducibly(make_frame):
    frame = make_frame(300, seed=5)

    assert sample(frame, 500, seed=1) is frame
    first, second = sample(frame, 100, seed=1), sample(frame, 100, seed=1)
    assert len(first) == 100
    assert first.index.tolist() == second.index.tolist()
    assert first.index.tolist() != sample(frame, 100, seed=2).index.tolist()


# --- real Evidently runs (importing Evidently costs ~7 s: once per module) --------------------------


@pytest.fixture(scope="module")
def reference(make_frame):
    return make_frame(1_500, seed=21)


@pytest.fixture(scope="module")
def drifted(make_frame, reference, default_config) -> DriftComputation:
    current = make_frame(1_500, seed=22, covariate_drift=1.0)
    return compute_drift(current, reference, default_config.contract, default_config.drift)


@pytest.fixture(scope="module")
def undrifted(make_frame, reference, default_config) -> DriftComputation:
    current = make_frame(1_500, seed=23)
    return compute_drift(current, reference, default_config.contract, default_config.drift)


def test_covariate_drift_is_found(drifted, default_config):
    assert [c.column for c in drifted.columns] == default_config.contract.feature_names
    names = {c.column for c in drifted.columns if c.drifted}
    assert {"Age", "Annual_Premium", "Vehicle_Age"} <= names
    assert drifted.drifted_columns == len(names)
    assert drifted.drift_share == pytest.approx(len(names) / 10)
    assert dataset_drifted(drifted.drift_share, dataset_threshold(default_config.drift, 10))
    age = next(c for c in drifted.columns if c.column == "Age")
    vehicle_age = next(c for c in drifted.columns if c.column == "Vehicle_Age")
    assert (age.method, vehicle_age.method) == ("K-S p_value", "chi-square contingency p_value")
    assert age.threshold == pytest.approx(0.01 / 10)  # Bonferroni: the family-wise rate over 10 columns
    assert age.score < age.threshold


def test_same_distribution_does_not_drift(undrifted, default_config):
    assert undrifted.drifted_columns == 0
    assert undrifted.drift_share == 0.0
    assert all(c.score >= c.threshold for c in undrifted.columns)
    assert not dataset_drifted(undrifted.drift_share, dataset_threshold(default_config.drift, 10))


def test_report_html_is_a_full_page(drifted):
    assert drifted.html.lstrip().lower().startswith("<html") or "<!doctype html>" in drifted.html.lower()[:200]
    assert "Annual_Premium" in drifted.html
    assert len(drifted.html) > 10_000


def test_max_rows_samples_both_frames(make_frame, reference, default_config, drifted):
    """Sampled to 300 rows the same shift is still found, with less evidence (a larger p-value)."""
    current = make_frame(1_500, seed=22, covariate_drift=1.0)
    small = replace(default_config.drift, max_rows=300)

    computed = compute_drift(current, reference, default_config.contract, small, report=False)

    def p_value(result: DriftComputation) -> float:
        return next(c.score for c in result.columns if c.column == "Annual_Premium")

    assert p_value(drifted) < p_value(computed) < small.false_alarm_rate / 10
    assert computed.html == ""


def test_column_verdicts_are_the_reports(make_frame, reference, drifted, default_config):
    """The calibration's report-free path runs the same tests on the same rows as ``compute_drift``."""
    current = make_frame(1_500, seed=22, covariate_drift=1.0)

    fast = column_verdicts(current, reference, default_config.contract, default_config.drift)

    assert [(c.column, c.method, c.drifted) for c in fast] == [(c.column, c.method, c.drifted) for c in drifted.columns]
    assert [c.score for c in fast] == pytest.approx([c.score for c in drifted.columns])


# --- the dataset rule --------------------------------------------------------------------------------


def test_any_column_rule_tests_each_column_at_the_bonferroni_level(default_config):
    drift = default_config.drift
    assert drift.dataset_rule == "any_column"
    assert column_threshold(drift, 30) == pytest.approx(drift.false_alarm_rate / 30)
    assert dataset_threshold(drift, 30) == pytest.approx(1 / 30)
    assert dataset_drifted(1 / 30, dataset_threshold(drift, 30))
    assert not dataset_drifted(0.0, dataset_threshold(drift, 30))


def test_share_rule_keeps_the_methods_default_level(default_config):
    drift = replace(default_config.drift, dataset_rule="share", drift_share_threshold=0.3)
    assert column_threshold(drift, 30) is None
    assert dataset_threshold(drift, 30) == 0.3
    assert not dataset_drifted(1 / 30, dataset_threshold(drift, 30))


@pytest.fixture(scope="module")
def cancer_shifted():
    """breast_cancer split at random; 'mean radius' of one half moved by +1 standard deviation."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    halves = frame.sample(frac=1.0, random_state=0)
    reference, current = halves.iloc[:284].copy(), halves.iloc[284:].copy()
    current["mean radius"] += frame["mean radius"].std()
    return current, reference


def cancer_contract(columns):
    from include.retraining.core.config import ContractConfig, FeatureSpec, LabelSpec

    return ContractConfig(label=LabelSpec("target"), features=tuple(FeatureSpec(c, "numeric") for c in columns))


def test_one_shifted_column_of_thirty_drifts_the_dataset(cancer_shifted, default_config):
    """The measured miss of the share rule (1/30 < 0.3) is a drift under the calibrated rule."""
    current, reference = cancer_shifted
    contract = cancer_contract(current.columns)

    calibrated = compute_drift(current, reference, contract, default_config.drift, report=False)
    share_rule = replace(default_config.drift, dataset_rule="share")
    legacy = compute_drift(current, reference, contract, share_rule, report=False)

    assert [c.column for c in calibrated.columns if c.drifted] == ["mean radius"]
    assert dataset_drifted(calibrated.drift_share, dataset_threshold(default_config.drift, 30))
    assert not dataset_drifted(legacy.drift_share, dataset_threshold(share_rule, 30))


# --- the categorical test ----------------------------------------------------------------------------


def test_contingency_test_is_symmetric_and_two_sample():
    """Evidently's ``chisquare`` takes the reference counts as exact; this test treats both as samples."""
    reference = pd.Series(["a"] * 500 + ["b"] * 500)
    current = pd.Series(["a"] * 540 + ["b"] * 460)

    p_value = contingency_p_value(reference, current)

    assert p_value == pytest.approx(contingency_p_value(current, reference))
    assert 0.05 < p_value < 0.1  # z = 1.79 for two samples of 1,000 (0.011 if the reference were exact)


def test_contingency_test_sees_a_new_category_and_ignores_nulls():
    reference = pd.Series(["a"] * 300 + ["b"] * 300 + [None] * 50)
    current = pd.Series(["a"] * 200 + ["b"] * 200 + ["c"] * 200)

    assert contingency_p_value(reference, current) < 1e-10
    assert contingency_p_value(reference, reference.copy()) == pytest.approx(1.0)
    assert contingency_p_value(pd.Series(["a"] * 10), pd.Series(["a"] * 20)) == 1.0
