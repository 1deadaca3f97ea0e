"""Data drift with Evidently 0.7: a machine-readable verdict plus the HTML report.

The methods and the dataset rule were chosen by ``make calibrate`` (``bench/calibrate.py``), which
measures the false-alarm rate on stationary nights and the detection rate on specified shifts:

* every column gets a two-sample p-value test: Kolmogorov-Smirnov for numeric columns, a chi-square
  test of homogeneity on the 2 x k contingency table for categorical ones. Evidently's own
  ``chisquare`` treats the reference counts as exact expectations, so with two samples of equal size
  its statistic is about twice too large (measured on 100 stationary generator nights of 10k rows: 24%
  of categorical columns below p = 0.05 and 11 nights alarmed under the rule below; the contingency
  test: 6% and none); it is registered with Evidently as ``chi2_contingency`` and runs in its report;
* dataset rule ``any_column``: the dataset drifted when any column's p-value falls below
  ``drift.false_alarm_rate / columns`` (Bonferroni), so a single shifted column among thirty is enough
  and the nightly false-alarm rate stays at most ``false_alarm_rate`` whatever the column count. The
  legacy rule ``share`` (share of drifted columns >= ``drift.drift_share_threshold``) remains available;
* both frames are sampled to ``drift.max_rows``: p-value tests keep their false-alarm rate at any size,
  but their power grows without bound with rows (evidentlyai/evidently#50), so the sample size fixes the
  smallest shift that alarms; it also bounds the cost (1M x 10 columns on the full data: about a minute).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from include.retraining.core.config import ContractConfig, DriftConfig
from include.retraining.core.records import ColumnDrift, DriftResult

CONTINGENCY_TEST = "chi2_contingency"


@dataclass(frozen=True)
class DriftComputation:
    drift_share: float
    drifted_columns: int
    columns: tuple[ColumnDrift, ...]
    html: str


def sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= max_rows else frame.sample(n=max_rows, random_state=seed)


def column_threshold(drift: DriftConfig, columns: int) -> float | None:
    """The per-column p-value level: Bonferroni under ``any_column``, the method's default under ``share``."""
    return drift.false_alarm_rate / columns if drift.dataset_rule == "any_column" else None


def dataset_threshold(drift: DriftConfig, columns: int) -> float:
    """The share of drifted columns at which the dataset drifted: one column under ``any_column``."""
    return 1 / columns if drift.dataset_rule == "any_column" else drift.drift_share_threshold


def compute_drift(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    contract: ContractConfig,
    drift: DriftConfig,
    *,
    report: bool = True,
) -> DriftComputation:
    """``report=False`` skips the HTML (about half the cost of a small check; the calibration needs none)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    register_contingency_test()
    definition = DataDefinition(
        numerical_columns=contract.numeric_features, categorical_columns=contract.categorical_features
    )
    features = contract.feature_names

    def as_dataset(frame: pd.DataFrame) -> Dataset:
        return Dataset.from_pandas(sample(frame[features], drift.max_rows, drift.seed), data_definition=definition)

    preset = DataDriftPreset(
        columns=features,
        drift_share=dataset_threshold(drift, len(features)),
        num_method=drift.numeric_method,
        cat_method=drift.categorical_method,
        threshold=column_threshold(drift, len(features)),
    )
    snapshot = Report([preset]).run(as_dataset(current), as_dataset(reference))
    share, count, columns = parse_metrics(snapshot.dict()["metrics"])
    kinds = {feature.name: feature.kind for feature in contract.features}
    columns = tuple(replace(c, method=display_name(c.method, kinds[c.column])) for c in columns)
    html = snapshot.get_html_str(as_iframe=False) if report else ""
    return DriftComputation(drift_share=share, drifted_columns=count, columns=columns, html=html)


def judge(
    result: DriftResult,
    current: pd.DataFrame,
    reference: Callable[[], pd.DataFrame] | None,
    contract: ContractConfig,
    drift: DriftConfig,
    min_rows: int,
    *,
    report: bool = True,
) -> tuple[DriftResult, str]:
    """``result`` with the data-drift verdict on ``current`` (the rows new to the champion) against the
    champion's fitted rows (``reference`` reads them; None: no champion or none recorded, status
    ``no_reference``), and the report's HTML. Fewer than ``min_rows`` current rows: ``no_new_data``."""
    if reference is None:
        return replace(result, status="no_reference"), ""
    if len(current) < min_rows:
        return replace(result, status="no_new_data"), ""
    rows = reference()
    computed = compute_drift(current, rows, contract, drift, report=report)
    verdict = replace(
        result,
        status="drift" if dataset_drifted(computed.drift_share, result.threshold) else "no_drift",
        drift_share=computed.drift_share,
        drifted_columns=computed.drifted_columns,
        columns=with_shifts(computed.columns, current, rows, contract),
        rows_reference=len(rows),
    )
    return verdict, computed.html


def with_shifts(
    columns: tuple[ColumnDrift, ...], current: pd.DataFrame, reference: pd.DataFrame, contract: ContractConfig
) -> tuple[ColumnDrift, ...]:
    """``columns`` with how far each moved between all the reference and all the current rows (a p-value
    says a column moved, not by how much)."""
    kinds = {feature.name: feature.kind for feature in contract.features}
    return tuple(
        replace(c, shift=column_shift(reference[c.column], current[c.column], kinds[c.column])) for c in columns
    )


def column_shift(reference: pd.Series, current: pd.Series, kind: str) -> str:
    """A numeric column's mean and standard deviation before -> after; a categorical column's share of the
    category whose share changed most (missing values left out, as the tests leave them out)."""
    before, after = (values.replace([np.inf, -np.inf], np.nan).dropna() for values in (reference, current))
    if before.empty or after.empty:
        return f"{len(before)} -> {len(after)} values"
    if kind == "numeric":
        before, after = before.astype(float), after.astype(float)
        mean = f"mean {_number(before.mean())} -> {_number(after.mean())}"
        return f"{mean}, sd {_number(before.std(ddof=0))} -> {_number(after.std(ddof=0))}"
    shares = pd.concat([values.astype(str).value_counts(normalize=True) for values in (before, after)], axis=1).fillna(
        0.0
    )
    moved = (shares.iloc[:, 1] - shares.iloc[:, 0]).abs()
    category = moved.idxmax()
    was, now = shares.loc[category]
    return f"share of {category!r} {was:.2f} -> {now:.2f}"


def _number(value: float) -> str:
    """Three significant digits, no exponent for the sizes features have (38.9, 0.523, 30,564)."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def column_verdicts(
    current: pd.DataFrame, reference: pd.DataFrame, contract: ContractConfig, drift: DriftConfig
) -> tuple[ColumnDrift, ...]:
    """The report's per-column tests without the report: Evidently's own test objects on the same rows.

    A report also renders plots for every column (1-7 s per check here); the calibration runs thousands
    of checks, so it calls this and cross-checks a few nights against ``compute_drift``.
    """
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    register_contingency_test()
    features = contract.feature_names
    threshold = column_threshold(drift, len(features))
    current, reference = (sample(frame[features], drift.max_rows, drift.seed) for frame in (current, reference))
    verdicts = []
    for feature in contract.features:
        numeric = feature.kind == "numeric"
        kind = ColumnType.Numerical if numeric else ColumnType.Categorical
        method = drift.numeric_method if numeric else drift.categorical_method
        # cleaned as Evidently's get_one_column_drift does before testing
        ref, cur = (frame[feature.name].replace([np.inf, -np.inf], np.nan).dropna() for frame in (reference, current))
        result = get_stattest(ref, cur, kind, method)(ref, cur, kind, threshold)
        verdicts.append(
            ColumnDrift(
                column=feature.name,
                method=display_name(method, feature.kind),
                score=float(result.drift_score),
                threshold=float(result.actual_threshold),
                drifted=bool(result.drifted),
            )
        )
    return tuple(verdicts)


def display_name(method: str, kind: str) -> str:
    """Evidently's name for a configured method ("ks" -> "K-S p_value"), as mails and reports show it."""
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    column_type = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    return get_registered_stattest(method, column_type).display_name


@functools.cache
def register_contingency_test() -> None:
    """Make ``chi2_contingency`` a categorical method Evidently can run (idempotent, once per process)."""
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    test = StatTest(
        name=CONTINGENCY_TEST,
        display_name="chi-square contingency p_value",
        allowed_feature_types=[ColumnType.Categorical],
        default_threshold=0.05,
    )
    register_stattest(test, default_impl=_contingency_test)


def _contingency_test(reference: pd.Series, current: pd.Series, feature_type: object, threshold: float):
    p_value = contingency_p_value(reference, current)
    return p_value, p_value < threshold


def contingency_p_value(reference: pd.Series, current: pd.Series) -> float:
    """Chi-square test that both samples come from one categorical distribution (nulls ignored)."""
    from scipy.stats import chi2_contingency

    table = pd.concat(
        [reference.value_counts(dropna=True), current.value_counts(dropna=True)], axis=1, sort=False
    ).fillna(0)
    table = table[(table > 0).any(axis=1)]
    if len(table) < 2 or (table.sum(axis=0) == 0).any():  # one category, or an empty side: nothing to test
        return 1.0
    return float(chi2_contingency(table.to_numpy().T, correction=False).pvalue)


def parse_metrics(metrics: list[dict]) -> tuple[float, int, tuple[ColumnDrift, ...]]:
    """``DriftedColumnsCount`` gives the dataset figures, one ``ValueDrift`` per column the details."""
    share, count, columns = 0.0, 0, []
    for metric in metrics:
        kind = metric["config"]["type"].rsplit(":", 1)[-1]
        if kind == "DriftedColumnsCount":
            share, count = float(metric["value"]["share"]), int(metric["value"]["count"])
        elif kind == "ValueDrift":
            columns.append(column_drift(metric["config"], float(metric["value"])))
    flagged = sum(c.drifted for c in columns)
    if flagged != count:  # our per-column reading must agree with Evidently's own count
        raise RuntimeError(f"Evidently counted {count} drifted columns, the per-column results say {flagged}")
    return share, count, tuple(columns)


# Methods named by their registry name (as configured) rather than Evidently's display name.
P_VALUE_METHODS = frozenset({"ks", "chisquare", "z", "fisher_exact", "g_test", "mannw", "t_test", CONTINGENCY_TEST})


def column_drift(config: dict, score: float) -> ColumnDrift:
    method, threshold = config["method"], float(config["threshold"])
    # p-value tests drift when the p-value falls below the threshold; distances when they reach it
    p_value = "p_value" in method or method in P_VALUE_METHODS
    drifted = score < threshold if p_value else score >= threshold
    return ColumnDrift(column=config["column"], method=method, score=score, threshold=threshold, drifted=drifted)


def dataset_drifted(share: float, threshold: float) -> bool:
    return share >= threshold
