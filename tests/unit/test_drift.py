"""Drift: reading Evidently's metrics, and a few real Evidently runs on small generated frames."""

from __future__ import annotations

from dataclasses import replace

import pytest

from include.retraining.core.drift import (
    DriftComputation,
    column_drift,
    compute_drift,
    dataset_drifted,
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
    assert {"Age", "Annual_Premium"} <= names
    assert drifted.drifted_columns == len(names)
    assert drifted.drift_share == pytest.approx(len(names) / 10)
    assert dataset_drifted(drifted.drift_share, default_config.drift.drift_share_threshold)
    age = next(c for c in drifted.columns if c.column == "Age")
    assert age.method == "Wasserstein distance (normed)"  # above 1,000 rows: distances, not p-values
    assert age.score > age.threshold


def test_same_distribution_does_not_drift(undrifted, default_config):
    assert undrifted.drifted_columns == 0
    assert undrifted.drift_share == 0.0
    assert not any(c.drifted for c in undrifted.columns)
    assert all(c.score < c.threshold for c in undrifted.columns)
    assert not dataset_drifted(undrifted.drift_share, default_config.drift.drift_share_threshold)


def test_report_html_is_a_full_page(drifted):
    assert drifted.html.lstrip().lower().startswith("<html") or "<!doctype html>" in drifted.html.lower()[:200]
    assert "Annual_Premium" in drifted.html
    assert len(drifted.html) > 10_000


def test_max_rows_samples_both_frames(make_frame, reference, default_config):
    """Sampled to 300 rows, Evidently switches from distances to its small-sample p-value tests."""
    current = make_frame(1_500, seed=22, covariate_drift=1.0)
    small = replace(default_config.drift, max_rows=300)

    computed = compute_drift(current, reference, default_config.contract, small)

    assert all(c.method.endswith("p_value") for c in computed.columns)
    assert next(c for c in computed.columns if c.column == "Age").drifted
