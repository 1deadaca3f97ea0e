"""Synthetic "vehicle insurance cross-sell" documents shaped like the Kaggle health-insurance cross-sell data.

Health-insurance customers are asked whether they would also buy vehicle insurance (`Response`).
The marginals mimic the public data set; `Response` follows a logistic model over the features so a
model has something real to learn. Three knobs turn the data bad in controlled ways:

* ``covariate_drift`` moves the input distributions (older customers, dearer premiums, older vehicles,
  more damage, another sales-channel mix) while the X -> Response relation stays put;
* ``concept_drift`` keeps the inputs and changes the X -> Response relation;
* ``malformed_share`` breaks that share of documents, each with exactly one realistic defect.

Everything is drawn from one ``numpy`` Generator, so a seed reproduces a data set exactly.
The CLI (``python -m include.retraining.sample_data seed ...``) inserts the documents into MongoDB.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

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
VEHICLE_AGES = ("< 1 Year", "1-2 Year", "> 2 Years")

MIN_AGE, MAX_AGE = 20, 85
YOUNG_AGE = 30  # below this, customers mostly own new cars and buy through channel 152
MIN_PREMIUM, MAX_PREMIUM = 2630.0, 540_165.0
MEDIAN_PREMIUM = 31_000.0

# Region codes: a few big ones, a handful of medium ones, the rest spread evenly over 0..52.
BIG_REGIONS = {28: 0.28, 8: 0.09, 46: 0.05, 41: 0.05}
MEDIUM_REGIONS = {15: 0.035, 30: 0.032, 29: 0.029, 50: 0.027, 3: 0.024, 11: 0.024, 36: 0.023, 33: 0.02}

# Sales channels by customer group: shares of (152, 160, 26, 124, other).
CHANNELS = (152, 160, 26, 124)
MEDIUM_CHANNELS = (157, 156, 122, 154, 151, 163, 13, 30, 55, 7)
YOUNG_CHANNEL_MIX = (0.78, 0.07, 0.04, 0.04, 0.07)
OLDER_CHANNEL_MIX = (0.08, 0.05, 0.32, 0.29, 0.26)
# Under covariate drift agents push the call centre (124) and the online channel (160).
DRIFTED_YOUNG_CHANNEL_MIX = (0.45, 0.25, 0.05, 0.15, 0.10)
DRIFTED_OLDER_CHANNEL_MIX = (0.04, 0.10, 0.22, 0.45, 0.19)

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
    frame = _customers(rng, rows, covariate_drift)
    frame["Response"] = _responses(rng, frame, _blend(ORIGINAL_CONCEPT, DRIFTED_CONCEPT, concept_drift))
    frame["ingested_at"] = _ingestion_times(rng, rows, start, end)
    frame = frame.sort_values("ingested_at", kind="stable").reset_index(drop=True)
    _break_documents(rng, frame, malformed_share)
    return frame.loc[:, list(COLUMNS)]


def generate_documents(
    rows: int,
    *,
    start: datetime,
    end: datetime,
    seed: int = 0,
    covariate_drift: float = 0.0,
    concept_drift: float = 0.0,
    malformed_share: float = 0.0,
) -> list[dict]:
    """Return the rows of `generate_frame` as dicts for `insert_many`.

    Values are python natives (int, float, str, tz-aware datetime); a missing field is an absent key.
    """
    frame = generate_frame(
        rows,
        start=start,
        end=end,
        seed=seed,
        covariate_drift=covariate_drift,
        concept_drift=concept_drift,
        malformed_share=malformed_share,
    )
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
    start, end = _as_utc(start, "start"), _as_utc(end, "end")
    if start >= end:
        raise ValueError(f"start must be before end, got start={start.isoformat()} end={end.isoformat()}")
    return start, end


def _as_utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# --- customers ------------------------------------------------------------------------------------------


def _customers(rng: np.random.Generator, rows: int, drift: float) -> pd.DataFrame:
    age = _ages(rng, rows, drift)
    young = age < YOUNG_AGE
    previously_insured = _previously_insured(rng, young, drift)
    region = _regions(rng, rows)
    return pd.DataFrame(
        {
            "Gender": np.where(rng.random(rows) < 0.54, "Male", "Female").astype(object),
            "Age": age,
            "Driving_License": (rng.random(rows) < 0.998).astype(np.int64),
            "Region_Code": region,
            "Previously_Insured": previously_insured,
            "Vehicle_Age": _vehicle_ages(rng, age, drift),
            "Vehicle_Damage": _vehicle_damage(rng, previously_insured, drift),
            "Annual_Premium": _premiums(rng, region, drift),
            "Policy_Sales_Channel": _sales_channels(rng, young, drift),
            "Vintage": rng.integers(10, 300, rows),
        }
    )


def _ages(rng: np.random.Generator, rows: int, drift: float) -> np.ndarray:
    """Two groups: young first-car owners (peak 23-26) and a broad right-skewed 40-50 group.

    Drift thins the young group and ages the older one (~+14 years on the mean at drift 1).
    """
    young_share = 0.42 - 0.27 * drift
    young = 20 + rng.gamma(3.0, 1.8, rows)
    older = 25 + 10 * drift + rng.gamma(5.0, 4.5, rows)
    age = np.where(rng.random(rows) < young_share, young, older)
    return np.clip(np.round(age), MIN_AGE, MAX_AGE).astype(np.int64)


def _previously_insured(rng: np.random.Generator, young: np.ndarray, drift: float) -> np.ndarray:
    # Young customers often still have vehicle cover through their parents' policy.
    share = np.where(young, 0.62, 0.37) - 0.15 * drift
    return (rng.random(young.size) < share).astype(np.int64)


def _vehicle_ages(rng: np.random.Generator, age: np.ndarray, drift: float) -> np.ndarray:
    """New cars for the young, 1-2 year old cars for the rest; drift adds old cars everywhere."""
    young = age < YOUNG_AGE
    new = np.where(young, 0.88, 0.15)
    old = np.where(young, 0.005, 0.03 + 0.0025 * (age - YOUNG_AGE))
    old = old + 0.30 * drift
    new = new * (1 - 0.5 * drift)
    draw = rng.random(age.size)
    labels = np.where(draw < new, VEHICLE_AGES[0], np.where(draw < 1 - old, VEHICLE_AGES[1], VEHICLE_AGES[2]))
    return labels.astype(object)


def _vehicle_damage(rng: np.random.Generator, previously_insured: np.ndarray, drift: float) -> np.ndarray:
    # Insured customers rarely report past damage (a damaged car usually is why one is not insured).
    share = np.where(previously_insured == 1, 0.01 + 0.09 * drift, 0.93 + 0.05 * drift)
    return np.where(rng.random(share.size) < share, "Yes", "No").astype(object)


def _regions(rng: np.random.Generator, rows: int) -> np.ndarray:
    named = {**BIG_REGIONS, **MEDIUM_REGIONS}
    rest = [code for code in range(53) if code not in named]
    rest_share = (1 - sum(named.values())) / len(rest)
    codes = [*named, *rest]
    shares = [*named.values(), *[rest_share] * len(rest)]
    return rng.choice(np.array(codes, dtype=np.float64), size=rows, p=shares)


def _premiums(rng: np.random.Generator, region: np.ndarray, drift: float) -> np.ndarray:
    """A flat minimum premium for ~17% of customers, a lognormal for the rest, dearer in region 28."""
    rows = region.size
    # Student-t on the log scale: a few very large fleet premiums, as in the real data.
    lognormal = MEDIAN_PREMIUM * np.exp(0.40 * rng.standard_t(8, rows))
    lognormal = lognormal * np.where(region == 28, 1.12, 0.96) * (1 + 0.4 * drift)
    flat = rng.random(rows) < 0.17 - 0.05 * drift
    premium = np.where(flat, MIN_PREMIUM, np.round(lognormal))
    return np.clip(premium, MIN_PREMIUM, MAX_PREMIUM)


def _sales_channels(rng: np.random.Generator, young: np.ndarray, drift: float) -> np.ndarray:
    mix = np.where(
        young[:, None],
        _mix(YOUNG_CHANNEL_MIX, DRIFTED_YOUNG_CHANNEL_MIX, drift),
        _mix(OLDER_CHANNEL_MIX, DRIFTED_OLDER_CHANNEL_MIX, drift),
    )
    draw = rng.random(young.size)
    # Index into (*CHANNELS, other); the clip guards against cumulative shares summing to 0.9999...
    pick = np.minimum((draw[:, None] >= np.cumsum(mix, axis=1)).sum(axis=1), len(CHANNELS))
    channel = np.array([*CHANNELS, np.nan])[pick]
    other = pick == len(CHANNELS)
    channel[other] = _other_channels(rng, int(other.sum()))
    return channel


def _other_channels(rng: np.random.Generator, count: int) -> np.ndarray:
    # Two thirds of the small channels' business goes to a few medium ones, the rest is spread thin.
    taken = set(CHANNELS) | set(MEDIUM_CHANNELS)
    rare = np.array([code for code in range(1, 164) if code not in taken], dtype=np.float64)
    medium = np.array(MEDIUM_CHANNELS, dtype=np.float64)
    return np.where(rng.random(count) < 2 / 3, rng.choice(medium, count), rng.choice(rare, count))


def _mix(original: Sequence[float], drifted: Sequence[float], drift: float) -> np.ndarray:
    return (1 - drift) * np.asarray(original) + drift * np.asarray(drifted)


def _ingestion_times(rng: np.random.Generator, rows: int, start: datetime, end: datetime) -> pd.Series:
    span_us = (end - start) // timedelta(microseconds=1)
    offsets = rng.integers(0, span_us, rows)  # [0, span): never reaches `end`
    return pd.Series(pd.Timestamp(start) + pd.to_timedelta(offsets, unit="us"))


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
    reference = _customers(rng, CALIBRATION_ROWS, drift=0.0)
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


# --- CLI ------------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m include.retraining.sample_data",
        description="Synthetic vehicle insurance cross-sell documents for MongoDB.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    seed = commands.add_parser("seed", help="generate documents and insert them into MongoDB")
    seed.add_argument("--rows", type=_positive(int), required=True, help="number of documents")
    seed.add_argument("--days", type=_positive(float), required=True, help="ingested_at spans this many days")
    seed.add_argument("--end", type=_iso_datetime, help="end of the time range, ISO 8601 (default now, UTC)")
    seed.add_argument("--covariate-drift", type=_share, default=0.0, help="0..1")
    seed.add_argument("--concept-drift", type=_share, default=0.0, help="0..1")
    seed.add_argument("--malformed-share", type=_share, default=0.0, help="0..1")
    seed.add_argument("--seed", type=int, default=0)
    seed.add_argument("--if-empty", action="store_true", help="do nothing if the collection has documents")
    seed.add_argument("--batch-size", type=_positive(int), default=5000)
    seed.add_argument("--database", default=os.environ.get("MONGO_DB", "insurance"))
    seed.add_argument("--collection", default=os.environ.get("MONGO_COLLECTION", "vehicle_insurance"))
    seed.add_argument("--conn-id", default="mongo_default", help="Airflow connection id of MongoDB")
    return parser.parse_args(argv)


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = kind(text)  # a ValueError here becomes argparse's "invalid ... value"
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {text}")
    return value


def _iso_datetime(text: str) -> datetime:
    try:
        return _as_utc(datetime.fromisoformat(text), "--end")
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 datetime: {text!r}") from error


def seed_collection(args: argparse.Namespace) -> int:
    """Insert generated documents in batches; return how many were inserted."""
    from include.retraining.mongo import count_documents, insert_documents

    target = {"database": args.database, "collection": args.collection, "conn_id": args.conn_id}
    where = f"{args.database}.{args.collection}"
    if args.if_empty and (existing := count_documents(**target)) > 0:
        print(f"skipped: {where} already holds {existing} documents")
        return 0
    end = args.end or datetime.now(UTC)
    start = end - timedelta(days=args.days)
    documents = generate_documents(
        args.rows,
        start=start,
        end=end,
        seed=args.seed,
        covariate_drift=args.covariate_drift,
        concept_drift=args.concept_drift,
        malformed_share=args.malformed_share,
    )
    inserted = sum(
        insert_documents(documents[i : i + args.batch_size], **target)
        for i in range(0, len(documents), args.batch_size)
    )
    labels = [doc["Response"] for doc in documents if isinstance(doc.get("Response"), int)]
    positives = sum(labels) / len(labels) if labels else 0.0
    print(
        f"inserted {inserted} documents ({positives:.1%} positives) "
        f"ingested_at {start.isoformat()} .. {end.isoformat()} into {where}"
    )
    return inserted


def main(argv: Sequence[str] | None = None) -> int:
    seed_collection(_parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
