"""The stage records are XCom values: JSON in, JSON out, and a clear error for a wrong shape."""

from __future__ import annotations

import json

import pytest

import include.retraining.core.records as records_module
from include.retraining.core.records import (
    Approval,
    ColumnDrift,
    Decision,
    DriftResult,
    Evaluation,
    NewData,
    PerformanceDrift,
    Promotion,
    Record,
    RecordError,
    Registration,
    RunInfo,
    Scoring,
    Slice,
    Snapshot,
    TrainingResult,
    ValidationReport,
    WindowPlan,
    parse,
)

SNAPSHOT = Snapshot(
    uri="s3://bucket/retraining/docs/runs/r1/validated/abc.parquet",
    rows=2_850,
    content_hash="ab" * 32,
    window_start=None,
    window_end="2024-02-01T00:00:00+00:00",
    columns=("_id", "Age", "Response", "ingested_at"),
)
DRIFT = DriftResult(
    status="drift",
    drift_share=0.4,
    drifted_columns=2,
    columns=(
        ColumnDrift(column="Age", method="Wasserstein distance (normed)", score=1.1, threshold=0.1, drifted=True),
        ColumnDrift(column="Gender", method="Jensen-Shannon distance", score=0.01, threshold=0.1, drifted=False),
        ColumnDrift(column="Vintage", method="K-S p_value", score=0.001, threshold=0.05, drifted=True),
    ),
    threshold=0.3,
    rows_current=2_000,
    rows_reference=2_850,
    current_uri="s3://bucket/current.parquet",
    reference_uri="s3://bucket/reference.parquet",
    champion_version="3",
    report_uri="s3://bucket/report.html",
    mlflow_run_id="0123456789abcdef",
    check_id="6b03b8c4c5c3e80419eb791a",
)
WINDOWS = WindowPlan(
    current=Slice(start="2024-01-31T00:00:00+00:00", end="2024-02-01T00:00:00+00:00", rows=2_000, ids_hash="c" * 64),
    training=Slice(start="2024-01-01T00:00:00+00:00", end="2024-01-31T20:00:00+00:00", rows=2_280, ids_hash="d" * 64),
    holdout=Slice(start="2024-01-31T20:00:01+00:00", end="2024-02-01T00:00:00+00:00", rows=570, ids_hash="e" * 64),
    rows_unlabeled=0,
    champion_training_end="2024-01-30T23:59:59+00:00",
)
RECORDS = [
    RunInfo(
        dag_id="retrain_vehicle_insurance",
        run_id="manual__2024-02-01T00:00:00+00:00",
        run_end="2024-02-01T00:00:00+00:00",
        reason="drift_monitor",
        trigger={"reason": "drift_monitor", "monitor_run_id": "m1"},
        monitor_check=DRIFT,  # a nested optional record
    ),
    SNAPSHOT,
    ValidationReport(
        snapshot=SNAPSHOT,
        rows_in=3_000,
        rows_quarantined=150,
        quarantine_uri="s3://bucket/quarantine.parquet",
        problems=("Age: 150 of 3,000 rows (5.0%) missing or not a number, e.g. _id a, b, c",),
    ),
    ColumnDrift(column="Age", method="K-S p_value", score=0.2, threshold=0.05, drifted=False),
    DRIFT,
    Decision(retrain=True, reason="data drift"),
    TrainingResult(
        mlflow_run_id="0123456789abcdef",
        model_uri="models:/m-0123",
        model_sha256="ab" * 32,
        holdout_uri="s3://bucket/holdout.parquet",
        rows_train=2_280,
        rows_holdout=570,
        params={"estimator": "random_forest", "n_estimators": 30, "class_weight": "balanced", "max_depth": None},
        metrics={"rows_train": 2280.0, "positive_share": 0.12},
        training_uri="s3://bucket/training.parquet",
        windows=WINDOWS,  # a nested optional record
    ),
    Evaluation(
        primary_metric="roc_auc",
        challenger={"roc_auc": 0.84, "f1": 0.4},
        champion={"roc_auc": 0.61, "f1": 0.2},
        champion_version="3",
        improvement=0.23,
        confidence=1.0,
        passed=True,
        reason="challenger beats champion",
    ),
    Evaluation(
        primary_metric="roc_auc",
        challenger={"roc_auc": 0.84},
        champion=None,
        champion_version=None,
        improvement=None,
        confidence=None,
        passed=True,
        reason="no champion yet",
    ),
    Registration(model_name="m", version="4", model_uri="models:/m-0123", tags={"snapshot_uri": "s3://x"}),
    Promotion(promoted=True, champion_version="4", previous_champion="3", reason="better"),
    Approval(
        outcome="rejected",
        reason="rejected by admin at 2026-12-07 03:40:12 UTC",
        by="admin",
        at="2026-12-07T03:40:12+00:00",
    ),
    Scoring(
        model_version="4",
        window_start="2024-05-01T00:00:00+00:00",
        window_end="2024-05-02T00:00:00+00:00",
        documents=12_000,
        scored=11_900,
        already_scored=0,
        unscorable=100,
        batches=3,
        collection="monitoring.predictions",
    ),
    NewData(count=1_200, watermark="2024-05-01T00:00:00+00:00", latest="2024-05-01T06:00:00+00:00"),
    WINDOWS,
    Slice(start=None, end=None, rows=0, ids_hash="f" * 64),  # an empty slice has no bounds
    PerformanceDrift(
        status="drift",
        metric="roc_auc",
        reference_value=0.86,
        current_value=0.61,
        lower=0.58,
        upper=0.64,
        labeled_rows=900,
        reason="a drop",
    ),
    PerformanceDrift(
        status="undetermined",
        metric="roc_auc",
        reference_value=None,
        current_value=None,
        lower=None,
        upper=None,
        labeled_rows=0,
        reason="no labels",
    ),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_round_trip_through_json(record: Record):
    as_json = json.dumps(record.to_dict())

    rebuilt = type(record).from_dict(json.loads(as_json))

    assert rebuilt == record
    assert rebuilt.to_dict() == record.to_dict()


def test_every_record_type_is_covered():
    defined = {t for t in vars(records_module).values() if isinstance(t, type) and issubclass(t, Record)}
    assert defined - {Record} == {type(r) for r in RECORDS}


def test_nested_records_come_back_as_records_and_tuples():
    report = ValidationReport.from_dict(json.loads(json.dumps(RECORDS[2].to_dict())))
    drift = DriftResult.from_dict(json.loads(json.dumps(DRIFT.to_dict())))

    assert isinstance(report.snapshot, Snapshot)
    assert isinstance(report.snapshot.columns, tuple)
    assert isinstance(report.problems, tuple)
    assert isinstance(drift.columns, tuple)
    assert all(isinstance(column, ColumnDrift) for column in drift.columns)


def test_to_dict_is_plain_json_types():
    data = DRIFT.to_dict()

    assert data["columns"][0] == {
        "column": "Age",
        "method": "Wasserstein distance (normed)",
        "score": 1.1,
        "threshold": 0.1,
        "drifted": True,
        "shift": None,
    }
    assert json.loads(json.dumps(data))["columns"][2]["column"] == "Vintage"


def test_drift_result_properties():
    assert DRIFT.drifted is True
    assert DRIFT.drifted_column_names == ["Age", "Vintage"]
    no_drift = DriftResult.from_dict({**DRIFT.to_dict(), "status": "no_drift"})
    assert no_drift.drifted is False


def test_defaults_apply_when_keys_are_absent():
    run = RunInfo.from_dict({"dag_id": "d", "run_id": "r", "run_end": "2024-01-01T00:00:00+00:00"})
    assert run.reason == "scheduled"
    assert run.trigger == {}
    drift = {k: v for k, v in DRIFT.to_dict().items() if k != "check_id"}
    assert DriftResult.from_dict(drift).check_id is None


def test_unknown_key_is_refused_with_its_path():
    data = DRIFT.to_dict()
    data["columns"] = [dict(data["columns"][0], colour="red"), *data["columns"][1:]]

    with pytest.raises(RecordError) as raised:
        DriftResult.from_dict(data)

    assert "DriftResult.columns[0].colour: unknown key: remove it or fix its spelling; allowed: ['column'," in str(
        raised.value
    )


def test_unknown_top_level_key():
    with pytest.raises(RecordError, match=r"Decision.why: unknown key: remove it"):
        Decision.from_dict({"retrain": True, "reason": "x", "why": "y"})


def test_missing_key_is_a_record_error():
    with pytest.raises(RecordError, match=r"Promotion.reason is missing: add it"):
        Promotion.from_dict({"promoted": True, "champion_version": "1", "previous_champion": None})


def test_literal_is_checked():
    with pytest.raises(RecordError, match=r"DriftResult.status: got 'maybe', not one of .*'no_drift'"):
        DriftResult.from_dict({**DRIFT.to_dict(), "status": "maybe"})


def test_not_an_object():
    with pytest.raises(RecordError, match=r"ValidationReport\.snapshot: got 's3://x', expected an object: write it"):
        ValidationReport.from_dict({**RECORDS[2].to_dict(), "snapshot": "s3://x"})
    with pytest.raises(RecordError, match=r"record: got \[True, 'x'\], expected an object"):
        parse(Decision, [True, "x"])


def test_a_misspelt_key_gets_the_close_name():
    with pytest.raises(RecordError, match=r"Decision.reasons: unknown key: did you mean 'reason'\?"):
        Decision.from_dict({"retrain": True, "reasons": "x"})


def test_a_number_is_not_taken_for_a_string():
    with pytest.raises(RecordError, match=r"Decision.reason: got 3, expected a string: write it in quotes"):
        Decision.from_dict({"retrain": True, "reason": 3})


def test_tuple_field_needs_a_list():
    with pytest.raises(RecordError, match=r"Snapshot.columns: got 'Age', expected a list"):
        Snapshot.from_dict({**SNAPSHOT.to_dict(), "columns": "Age"})
