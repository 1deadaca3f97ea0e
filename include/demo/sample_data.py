"""Synthetic "vehicle insurance cross-sell" documents shaped like the Kaggle health-insurance cross-sell data.

Health-insurance customers are asked whether they would also buy vehicle insurance (`Response`).
The marginals mimic the public data set; `Response` follows a logistic model over the features so a
model has something real to learn. Three knobs turn the data bad in controlled ways:

* ``covariate_drift`` moves the input distributions (older customers, dearer premiums, older vehicles,
  more damage, another sales-channel mix) while the X -> Response relation stays put;
* ``concept_drift`` keeps the inputs and changes the X -> Response relation;
* ``malformed_share`` breaks that share of documents, each with exactly one realistic defect.

Everything is drawn from one ``numpy`` Generator, so a seed reproduces a data set exactly.
``python -m include.demo.seed`` inserts the documents into MongoDB.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from include.demo.customers import MEDIAN_PREMIUM, VEHICLE_AGES, YOUNG_AGE, customers, ingestion_times

COLUMNS = (
    "Gender",
    "Age",
    "Driving_License",
    "Region_Code",
    "Previously_Insured",
    "Vehicle_Age",
    "Vehicle_Damage",
    "Annual_Premium",
    "Policy_Sales_Channel",
    "Vintage",
    "Response",
    "ingested_at",
)
# Malformed documents, one defect each. These overwrite a field; None drops it from the document.
FIELD_DEFECTS = {
    "missing_age": ("Age", None),
    "unknown_age": ("Age", "unknown"),
    "unknown_gender": ("Gender", "X"),
    "missing_response": ("Response", None),
    "unknown_vehicle_age": ("Vehicle_Age", "10+ Years"),
}
DEFECTS = (*FIELD_DEFECTS, "negative_premium")


@dataclass(frozen=True)
class Concept:
    """Log-odds contributions of the features to buying vehicle insurance (intercept is calibrated)."""

    previously_insured: float
    vehicle_damage: float
    young: float  # Age < 30
    middle_aged: float  # 30 <= Age <= 55
    vehicle_1_2_years: float
    vehicle_over_2_years: float
    channel_152: float
    region_28: float
    male: float
    no_licence: float
    log_premium: float


# The original relation (as in the public data): insured customers almost never buy, damaged cars and
# middle-aged owners of older cars do, the young-customer channel 152 converts badly.
ORIGINAL_CONCEPT = Concept(
    previously_insured=-4.0,
    vehicle_damage=2.3,
    young=-0.2,
    middle_aged=0.7,
    vehicle_1_2_years=0.3,
    vehicle_over_2_years=0.7,
    channel_152=-1.1,
    region_28=0.3,
    male=0.1,
    no_licence=-1.5,
    log_premium=0.15,
)
# The drifted relation: a competitor's bundle makes insured customers buy again, young customers
# (and their channel) now convert best and damage matters much less.
DRIFTED_CONCEPT = Concept(
    previously_insured=0.3,
    vehicle_damage=0.4,
    young=1.4,
    middle_aged=-0.7,
    vehicle_1_2_years=0.0,
    vehicle_over_2_years=-0.5,
    channel_152=0.6,
    region_28=-0.3,
    male=-0.1,
    no_licence=-1.5,
    log_premium=-0.3,
)
LOGIT_NOISE = 0.6
# Every concept (and every blend of two) is calibrated to this share of buyers among undrifted
# customers, so concept drift changes who buys, not how many; covariate drift may still move the rate.
POSITIVE_RATE = 0.12
CALIBRATION_ROWS, CALIBRATION_SEED = 20_000, 20_240_601


def generate_frame(
    rows: int,
    *,
    start: datetime,
    end: datetime,
    seed: int = 0,
    covariate_drift: float = 0.0,
    concept_drift: float = 0.0,
    malformed_share: float = 0.0,
) -> pd.DataFrame:
    """Return `rows` customers sorted by `ingested_at` (uniform over [start, end), UTC).

    Naive `start`/`end` are taken as UTC. Columns hit by malformed rows become `object`, a missing value
    there is None. Without malformed rows every column has its natural dtype.
    """
    _check_rows(rows)
    _check_knobs(
        covariate_drift=covariate_drift,
        concept_drift=concept_drift,
        malformed_share=malformed_share,
    )
    start, end = _check_range(start, end)
    rng = np.random.default_rng(seed)
    frame = customers(rng, rows, covariate_drift)
    frame["Response"] = _responses(rng, frame, _blend(ORIGINAL_CONCEPT, DRIFTED_CONCEPT, concept_drift))
    frame["ingested_at"] = ingestion_times(rng, rows, start, end)
    frame = frame.sort_values("ingested_at", kind="stable").reset_index(drop=True)
    _break_documents(rng, frame, malformed_share)
    return frame.loc[:, list(COLUMNS)]


def generate_documents(rows: int, **options: Any) -> list[dict]:
    """Return the rows of `generate_frame(rows, **options)` as dicts for `insert_many`.

    Values are python natives (int, float, str, tz-aware datetime); a missing field is an absent key.
    """
    frame = generate_frame(rows, **options)
    columns = {name: _native_values(frame[name]) for name in frame.columns}
    return [{name: values[i] for name, values in columns.items() if values[i] is not None} for i in range(rows)]


# --- validation -------------------------------------------------------------------------------------


def _check_rows(rows: int) -> None:
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or rows <= 0:
        raise ValueError(f"rows must be a positive integer, got {rows!r}")


def _check_knobs(**knobs: float) -> None:
    for name, value in knobs.items():
        if not 0.0 <= value <= 1.0:  # also rejects NaN
            raise ValueError(f"{name} must be within [0, 1], got {value!r}")


def _check_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = as_utc(start, "start"), as_utc(end, "end")
    if start >= end:
        raise ValueError(f"start must be before end, got start={start.isoformat()} end={end.isoformat()}")
    return start, end


def as_utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# --- response -------------------------------------------------------------------------------------------


def _blend(original: Concept, drifted: Concept, drift: float) -> Concept:
    fields = original.__dataclass_fields__
    return Concept(**{name: (1 - drift) * getattr(original, name) + drift * getattr(drifted, name) for name in fields})


def _responses(rng: np.random.Generator, frame: pd.DataFrame, concept: Concept) -> np.ndarray:
    logit = _intercept(concept) + _feature_logit(frame, concept) + rng.normal(0.0, LOGIT_NOISE, len(frame))
    return (rng.random(len(frame)) < _sigmoid(logit)).astype(np.int64)


@functools.cache
def _intercept(concept: Concept) -> float:
    """The intercept giving POSITIVE_RATE buyers on a fixed undrifted reference population (bisection)."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    reference = customers(rng, CALIBRATION_ROWS, drift=0.0)
    logit = _feature_logit(reference, concept) + rng.normal(0.0, LOGIT_NOISE, CALIBRATION_ROWS)
    low, high = -20.0, 20.0
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if _sigmoid(logit + middle).mean() < POSITIVE_RATE else (low, middle)
    return (low + high) / 2


def _feature_logit(frame: pd.DataFrame, concept: Concept) -> np.ndarray:
    age = frame["Age"].to_numpy()
    vehicle_age = frame["Vehicle_Age"].to_numpy()
    return (
        concept.previously_insured * frame["Previously_Insured"].to_numpy()
        + concept.vehicle_damage * (frame["Vehicle_Damage"].to_numpy() == "Yes")
        + concept.young * (age < YOUNG_AGE)
        + concept.middle_aged * ((age >= YOUNG_AGE) & (age <= 55))
        + concept.vehicle_1_2_years * (vehicle_age == VEHICLE_AGES[1])
        + concept.vehicle_over_2_years * (vehicle_age == VEHICLE_AGES[2])
        + concept.channel_152 * (frame["Policy_Sales_Channel"].to_numpy() == 152)
        + concept.region_28 * (frame["Region_Code"].to_numpy() == 28)
        + concept.male * (frame["Gender"].to_numpy() == "Male")
        + concept.no_licence * (frame["Driving_License"].to_numpy() == 0)
        + concept.log_premium * np.log(frame["Annual_Premium"].to_numpy() / MEDIAN_PREMIUM)
    )


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-logit))


# --- malformed documents ----------------------------------------------------------------------------


def _break_documents(rng: np.random.Generator, frame: pd.DataFrame, share: float) -> None:
    """Give round(share * rows) random rows exactly one defect each, in place."""
    count = round(share * len(frame))
    if count == 0:
        return
    rows = rng.choice(len(frame), size=count, replace=False)
    defects = rng.choice(len(DEFECTS), size=count)
    for code, defect in enumerate(DEFECTS):
        if (hit := rows[defects == code]).size:
            _apply_defect(frame, defect, hit)


def _apply_defect(frame: pd.DataFrame, defect: str, rows: np.ndarray) -> None:
    if defect == "negative_premium":  # a sign lost in some upstream export
        frame.loc[rows, "Annual_Premium"] = -frame.loc[rows, "Annual_Premium"]
        return
    column, value = FIELD_DEFECTS[defect]
    if frame[column].dtype != object:
        frame[column] = frame[column].astype(object)  # keeps ints as python ints beside None / strings
    frame.loc[rows, column] = value


def _native_values(column: pd.Series) -> list:
    """Python natives for pymongo: `tolist` unboxes numpy scalars; Timestamps become plain datetimes."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return [moment.to_pydatetime() for moment in column]
    return column.tolist()
