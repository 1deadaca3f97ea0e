"""Records for tests that need one but care about a few of its fields."""

from __future__ import annotations

from typing import Any

from include.retraining.core.records import ColumnDrift, DriftResult


def drift_result(**changes: Any) -> DriftResult:
    """A checked window against champion v3 (one of three columns drifted, no dataset drift); ``changes``
    in their JSON form."""
    base = DriftResult(
        status="no_drift",
        drift_share=0.1,
        drifted_columns=1,
        columns=(
            ColumnDrift("Age", "Wasserstein distance (normed)", 0.02, 0.1, False),
            ColumnDrift("Vintage", "Wasserstein distance (normed)", 0.2, 0.1, True),
            ColumnDrift("Annual_Premium", "Wasserstein distance (normed)", 0.05, 0.1, False),
        ),
        threshold=0.3,
        rows_current=1_000,
        rows_reference=1_000,
        current_uri="s3://b/current.parquet",
        reference_uri="s3://b/reference.parquet",
        champion_version="3",
        report_uri="s3://b/report.html",
        mlflow_run_id="run",
    )
    return DriftResult.from_dict(base.to_dict() | changes)
