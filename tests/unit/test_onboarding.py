"""The inference behind ``make onboard``, on hand-made samples: the kinds, classes, bounds and types a
reviewer would write, the window and minimums sized from the collection's rate, the gate, the traps it
refuses or leaves out, and the notes on what is unsure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from include.retraining.core.config import GateConfig, load_config
from include.retraining.core.contract import validate_frame
from include.retraining.core.evaluation import decide_promotion
from include.retraining.core.onboarding import (
    CollectionFacts,
    feature_spec,
    feature_specs,
    guess_timestamp_field,
    id_type,
    label_spec,
    propose,
    timestamp_type,
)

T = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("values", "objective", "classes", "positive"),
    [
        ([0, 1, 1, 0, 1.0], "binary", [0, 1], 1),
        ([True, False, True], "binary", [False, True], True),
        (["yes", "no", "no", "no"], "binary", ["no", "yes"], "yes"),  # the rarer class
        (["rain", "sun", "fog", "sun", None], "multiclass", ["fog", "rain", "sun"], None),
        ([3, 1, 2, 2, 5], "multiclass", [1, 2, 3, 5], None),
    ],
)
def test_label_objective_and_classes_keep_their_type(values, objective, classes, positive):
    spec, _ = label_spec("y", values)

    assert (spec["objective"], spec["classes"], spec.get("positive_class")) == (objective, classes, positive)
    assert [type(c) for c in spec["classes"]] == [type(c) for c in classes]


def test_a_continuous_label_is_regression_bounded_by_its_sign_only():
    spec, unsure = label_spec("price", [float(v) / 3 for v in range(100)])

    assert spec == {"name": "price", "objective": "regression", "min": 0.0}
    assert unsure == []
    assert "min" not in label_spec("change", [-1.5, 2.0, 3.0])[0]


def test_label_problems_are_named():
    with pytest.raises(ValueError, match="label 'y': no sampled document has it"):
        label_spec("y", [None, None])
    with pytest.raises(ValueError, match=r"label 'y' mixes value types \['int', 'str'\]"):
        label_spec("y", [1, "a"])


def test_features_numeric_categorical_and_left_out():
    numeric, _ = feature_spec("age", [20, 35, 50.5, 80])
    signed, _ = feature_spec("balance", [-20.0, 35.0])
    categorical, _ = feature_spec("colour", ["red", "blue", "red"])
    text, note = feature_spec("comment", [f"free text {i}" for i in range(200)])
    mixed, mixed_note = feature_spec("code", [1, "A"])

    assert numeric == {"name": "age", "kind": "numeric", "min": 0.0}  # the sign, never the sample's range
    assert signed == {"name": "balance", "kind": "numeric"}
    assert categorical == {"name": "colour", "kind": "categorical", "categories": ["blue", "red"]}
    assert text is None
    assert "200 distinct strings" in note
    assert mixed is None
    assert "neither all numbers nor all strings" in mixed_note


def test_a_95_value_category_in_5000_rows_is_kept_open_and_free_text_is_left_out():
    airports = [f"A{i:02d}" for i in range(95)]
    dest, note = feature_spec("dest", [airports[i % 95] for i in range(5000)])
    free, free_note = feature_spec("comment", [f"text {i % 400}" for i in range(5000)])

    assert dest == {"name": "dest", "kind": "categorical"}  # no list: a value the sample missed is not quarantined
    assert "95 distinct strings in 5,000 values" in note
    assert free is None  # 400 values repeating 12 times: too many for a category
    assert "free text" in free_note


def test_calendar_columns_and_identifiers_are_left_out_with_a_note():
    days = pd.date_range("2020-01-01", periods=400, freq="D")
    sample = [
        {"year": d.year, "month": d.month, "hour": i % 24, "row": 1000 + i, "x": float(i % 7)}
        for i, d in enumerate(days)
    ]

    found = feature_specs(sample, set())

    assert [spec["name"] for spec in found.specs] == ["hour", "x"]  # a day's cycle is shorter than the window
    notes = " ".join(found.notes)
    assert "month: a calendar column (month), left out" in notes
    assert "year: a calendar column (year), left out" in notes
    assert "hour: a calendar column (hour) with a cycle shorter than the window: kept" in notes
    assert "row: a whole number unique per row (an identifier), left out" in notes
    assert found.ranges == {"hour": "0 .. 23, whole numbers", "x": "0 .. 6, whole numbers"}


def test_a_feature_with_nulls_allows_twice_their_share():
    spec, note = feature_spec("income", [1.0, None, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])

    assert spec["max_null_share"] == 0.21
    assert "10.0% missing" in note


def test_id_types():
    assert id_type({"objectId": 10}) == "objectid"
    assert id_type({"int": 3, "long": 2}) == "int"
    assert id_type({"string": 4}) == "string"
    assert id_type({"int": 1, "string": 1}) == "auto"
    assert id_type({"double": 4}) == "auto"


def test_the_timestamp_field_is_the_one_holding_moments():
    sample = [{"_id": i, "x": 1_000_000 + i, "at": 1_704_067_200_000 + i, "note": "n"} for i in range(5)]

    assert guess_timestamp_field(sample, {"_id"}) == "at"
    assert guess_timestamp_field([{"x": 1}], set()) is None


def facts(values: list, types: dict[str, int]) -> CollectionFacts:
    sample = [{"_id": i, "at": v, "f": float(i), "y": i % 2} for i, v in enumerate(values)]
    return CollectionFacts("db", "c", len(sample), sample, {"int": len(sample)}, "at", types, T, T)


def test_epoch_seconds_and_milliseconds_are_told_apart():
    seconds = [T.timestamp() + i for i in range(4)]

    assert timestamp_type(facts(seconds, {"number": 4}))[0] == "epoch_seconds"
    assert timestamp_type(facts([s * 1000 for s in seconds], {"number": 4}))[0] == "epoch_millis"


def test_mixed_forms_are_unsure_and_the_majority_wins():
    kind, unsure = timestamp_type(facts([T] * 3, {"date": 90, "string": 10}))

    assert kind == "date"
    assert "stored in several forms (90 as date, 10 as string)" in unsure[0]


def stamped(frame: pd.DataFrame, start: datetime, per_day: float) -> list[dict]:
    """The frame's rows as documents stamped ``per_day`` a day from ``start``, int ids."""
    step = timedelta(days=1) / per_day
    rows = frame.to_dict("records")
    return [{"_id": i, **row, "at": start + step * i} for i, row in enumerate(rows)]


def collection(docs: list[dict]) -> CollectionFacts:
    stamps = [doc["at"] for doc in docs]
    return CollectionFacts(
        "db", "c", len(docs), docs, {"int": len(docs)}, "at", {"date": len(docs)}, min(stamps), max(stamps)
    )


def daily(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    return pd.DataFrame({"x": x, "z": rng.normal(size=rows), "y": (x + rng.normal(size=rows) > 0.8).astype(int)})


def test_propose_writes_every_section_it_owns():
    docs = stamped(daily(40), T, per_day=1)

    onboarding = propose(collection(docs), "y", "m")

    config = onboarding.config
    assert set(config) == {"model_name", "start_date", "source", "contract", "monitoring", "training", "gate", "mlflow"}
    assert config["start_date"] == "2024-01-01"
    assert config["source"]["id_type"] == "int"
    assert config["contract"]["min_rows"] == 20
    assert config["training"]["hyperparameters"]["max_iter"] == 300
    assert onboarding.run_date == "2024-02-09"


def test_a_small_daily_collection_gets_a_window_that_holds_its_minimums(tmp_path):
    """The issue's case: 1,461 days, one row a day. A 90-day window held 90 rows next to a min_rows of 365."""
    docs = stamped(daily(1461), datetime(1949, 1, 1, tzinfo=UTC), per_day=1)

    onboarding = propose(collection(docs), "y", "rainfall")

    training, contract = onboarding.config["training"], onboarding.config["contract"]
    assert training["window_days"] == 1461  # all of the data: 2,000 rows would need 2,000 days
    assert training["recency_half_life_days"] == 1000  # a half-life of about 1,000 rows, not 7 of them
    assert contract["min_rows"] <= (1461 - 293) // 2
    assert training["min_holdout_rows"] <= 293
    assert onboarding.config["monitoring"]["min_new_documents"] == contract["min_rows"]
    assert onboarding.run_date == "1952-12-31"
    assert "trains on 1,168 and holds out 293" in " ".join(onboarding.inferred)
    assert any("1.0 rows a day" in choice for choice in onboarding.choices)


def test_a_fast_collection_keeps_the_measured_window_and_half_life():
    docs = stamped(daily(5000), datetime(2024, 1, 1, tzinfo=UTC), per_day=800)

    training = propose(collection(docs), "y", "fast").config["training"]

    assert (training["window_days"], training["recency_half_life_days"]) == (90, 7)


def test_the_gate_means_the_same_on_every_scale_and_has_no_floor():
    rng = np.random.default_rng(1)
    grams = pd.DataFrame({"x": rng.normal(size=600)}).assign(w=lambda f: 5000 + 800 * f.x + rng.normal(size=600))
    docs = stamped(grams, datetime(2024, 1, 1, tzinfo=UTC), per_day=50)

    onboarding = propose(collection(docs), "w", "weights")

    gate = onboarding.config["gate"]
    assert gate == {
        "primary_metric": "rmse",
        "min_improvement": 0.005,
        "min_improvement_unit": "label_std",
        "confidence": 0.95,
        "bootstrap_rounds": 300,
    }
    notes = " ".join(onboarding.choices)
    assert "units of the holdout label's standard deviation" in notes
    assert "no gate.floor" in notes
    assert "gate.confidence 0.95" in notes


def test_a_label_std_margin_decides_alike_in_grams_and_in_tonnes():
    rng = np.random.default_rng(2)
    y = rng.normal(5000, 800, 400)
    champion, challenger = y + rng.normal(0, 300, 400), y + rng.normal(0, 250, 400)
    gate = GateConfig(primary_metric="rmse", min_improvement=0.005, min_improvement_unit="label_std")

    grams = decide_promotion(y, challenger, champion, "1", gate, "regression")
    tonnes = decide_promotion(y / 1e6, challenger / 1e6, champion / 1e6, "1", gate, "regression")
    absolute = decide_promotion(y / 1e6, challenger / 1e6, champion / 1e6, "1", GateConfig(primary_metric="rmse"))

    assert grams.passed
    assert tonnes.passed
    assert grams.confidence == tonnes.confidence
    assert "x the label's std" in grams.reason
    assert not absolute.passed  # 0.005 tonnes is 5 kg: more than the 50 g the challenger gained


def test_label_std_is_refused_for_a_unitless_metric(tmp_path):
    model = tmp_path / "m.json"
    model.write_text(
        '{"model_name": "m", "source": {"database": "d", "collection": "c"}, "mlflow": {"experiment": "m"},'
        '"contract": {"label": {"name": "y", "classes": [0, 1]}, "features": [{"name": "x", "kind": "numeric"}]},'
        '"training": {}, "gate": {"min_improvement_unit": "label_std"}}'
    )

    with pytest.raises(ValueError, match=r"gate\.min_improvement_unit label_std scales an error in the label's units"):
        load_config(base=model)


def tail_positives(rows: int = 5000, share: float = 0.05, seed: int = 3) -> pd.DataFrame:
    """An imbalanced binary set whose positives are the tail of ``amount``: the rows a range from the sample
    would quarantine."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, rows)
    positive = amount >= np.quantile(amount, 1 - share)
    return pd.DataFrame({"amount": amount, "age": rng.integers(18, 90, rows), "fraud": positive.astype(int)})


def test_no_positive_row_of_an_imbalanced_set_is_quarantined():
    """The contract written from a 1,000-row sample, applied to the whole 20,000 rows: the positives (5%)
    sit beyond anything the sample saw, and not one is quarantined."""
    frame = tail_positives(rows=20000)
    docs = stamped(frame, datetime(2024, 1, 1, tzinfo=UTC), per_day=500)
    sample = [docs[i] for i in np.random.default_rng(0).choice(len(docs), 1000, replace=False)]
    facts = CollectionFacts("db", "c", len(docs), sample, {"int": 1}, "at", {"date": 1}, docs[0]["at"], docs[-1]["at"])

    onboarding = propose(facts, "fraud", "fraud")

    config = load_config_from(onboarding.config)
    whole = pd.DataFrame(docs)
    outcome = validate_frame(whole, config.contract, "_id")
    assert len(outcome.quarantined) == 0
    assert int(outcome.valid["fraud"].sum()) == int(frame["fraud"].sum())
    assert {f.name: (f.min, f.max) for f in config.contract.features} == {"amount": (0.0, None), "age": (0.0, None)}
    assert set(onboarding.sample_ranges) == {"amount", "age"}  # recorded as information, not bounds


def load_config_from(config: dict):
    import json

    from include.retraining.core.config import DEFAULTS_FILE, config_from, deep_merge

    return config_from(deep_merge(json.loads(DEFAULTS_FILE.read_text()), config))


def test_a_label_sorted_with_the_timestamp_is_refused_with_the_fix():
    frame = daily(600).sort_values("y", kind="stable")  # a file sorted by class, stamped in file order
    docs = stamped(frame, datetime(2024, 1, 1, tzinfo=UTC), per_day=20)

    with pytest.raises(ValueError, match=r"y is sorted with at .*shuffle the file before make load-csv"):
        propose(collection(docs), "y", "sorted")


def test_a_timestamp_that_is_one_instant_is_refused_with_the_fix():
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    docs = [{"_id": i, "x": float(i % 5), "y": i % 2, "at": epoch} for i in range(100)]

    with pytest.raises(ValueError, match=r"every row is stamped 1970-01-01T00:00:00\+00:00 \(the epoch"):
        propose(collection(docs), "y", "years")


def test_a_multiclass_label_whose_newest_rows_lack_a_class_is_refused():
    rng = np.random.default_rng(4)
    classes = ["a", "b", "c"] * 200 + ["a", "b"] * 120  # class c stops arriving: the holdout never sees it
    frame = pd.DataFrame({"x": rng.normal(size=len(classes)), "y": classes})
    docs = stamped(frame, datetime(2024, 1, 1, tzinfo=UTC), per_day=30)

    with pytest.raises(ValueError, match=r"the out-of-time holdout \(\d+\) lack class \['c'\]"):
        propose(collection(docs), "y", "gap")


def test_a_short_category_list_is_closed_only_when_the_sample_cannot_have_missed_a_value():
    values = ["car"] * 60 + ["van"] * 30 + ["bus"] * 2  # bus seen twice: rarer values may exist unseen

    whole, _ = feature_spec("vehicle", values, complete=True)
    part, note = feature_spec("vehicle", values, complete=False)
    common, _ = feature_spec("vehicle", values[:90], complete=False)

    assert whole["categories"] == ["bus", "car", "van"]
    assert part == {"name": "vehicle", "kind": "categorical"}
    assert "1 of its 3 values seen fewer than 5 times in the sample, so more may exist" in note
    assert common["categories"] == ["car", "van"]


def test_the_next_commands_are_the_grant_then_a_run_at_a_date_inside_the_data(tmp_path):
    from include.retraining.core.onboarding import Onboarding
    from include.retraining.onboard import MODELS_DIR, STACK_ENV, next_commands

    onboarding = Onboarding({"model_name": "m"}, [], [], run_date="2024-06-30")

    assert next_commands(MODELS_DIR / "m.json", onboarding) == [
        "make mongo-setup MODEL=m",
        f"{STACK_ENV} && .venv/bin/airflow dags test retrain_m 2024-06-30",
    ]
    grant, first_run = next_commands(tmp_path / "m.json", onboarding)  # outside include/models: named to both
    assert grant.endswith(f"mongo_setup --admin-conn-id mongo_admin --model-file {tmp_path / 'm.json'}")
    assert first_run == f"{STACK_ENV} && RETRAIN_MODELS_DIR={tmp_path} .venv/bin/airflow dags test retrain_m 2024-06-30"
