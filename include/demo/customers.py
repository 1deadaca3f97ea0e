"""The synthetic customers: the feature draws of the vehicle-insurance sample data, with covariate drift."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

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

# --- customers ------------------------------------------------------------------------------------------


def customers(rng: np.random.Generator, rows: int, drift: float) -> pd.DataFrame:
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


def ingestion_times(rng: np.random.Generator, rows: int, start: datetime, end: datetime) -> pd.Series:
    span_us = (end - start) // timedelta(microseconds=1)
    offsets = rng.integers(0, span_us, rows)  # [0, span): never reaches `end`
    return pd.Series(pd.Timestamp(start) + pd.to_timedelta(offsets, unit="us"))
