"""The inference behind ``make onboard``, on hand-made samples: the kinds, classes, ranges and types a
reviewer would write, and the notes on what is unsure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.retraining.core.onboarding import (
    CollectionFacts,
    feature_spec,
    guess_timestamp_field,
    id_type,
    label_spec,
    plausible_range,
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


def test_a_continuous_label_is_regression_with_a_range():
    spec, unsure = label_spec("price", [float(v) / 3 for v in range(100)])

    assert spec["objective"] == "regression"
    assert "classes" not in spec
    assert spec["min"] == 0.0
    assert spec["max"] >= 33.0
    assert unsure == []


def test_label_problems_are_named():
    with pytest.raises(ValueError, match="label 'y': no sampled document has it"):
        label_spec("y", [None, None])
    with pytest.raises(ValueError, match=r"label 'y' mixes value types \['int', 'str'\]"):
        label_spec("y", [1, "a"])


def test_features_numeric_categorical_and_left_out():
    numeric, _ = feature_spec("age", [20, 35, 50.5, 80])
    categorical, _ = feature_spec("colour", ["red", "blue", "red"])
    text, note = feature_spec("comment", [f"free text {i}" for i in range(200)])
    mixed, mixed_note = feature_spec("code", [1, "A"])

    assert numeric["kind"] == "numeric"
    assert numeric["min"] <= 20
    assert numeric["max"] >= 80
    assert categorical == {"name": "colour", "kind": "categorical", "categories": ["blue", "red"]}
    assert text is None
    assert "200 distinct strings" in note
    assert mixed is None
    assert "neither all numbers nor all strings" in mixed_note


def test_a_feature_with_nulls_allows_twice_their_share():
    spec, note = feature_spec("income", [1.0, None, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])

    assert spec["max_null_share"] == 0.21
    assert "10.0% missing" in note


@pytest.mark.parametrize(
    ("values", "low", "high"),
    [
        (list(range(18, 101)), 0.0, 182.0),  # 18..100 widened by 82 each side; never negative: clamped at 0
        ([-5.0, 0.0, 5.0], -15.0, 15.0),
        ([7.0, 7.0], 0.0, 14.0),  # a constant: widened by its own size
    ],
)
def test_plausible_ranges_are_generous(values, low, high):
    assert plausible_range(values) == (low, high)


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


def test_propose_writes_every_section_it_owns():
    onboarding = propose(facts([T + timedelta(days=i) for i in range(40)], {"date": 40}), "y", "m")

    config = onboarding.config
    assert set(config) == {"model_name", "start_date", "source", "contract", "training", "gate", "mlflow"}
    assert config["start_date"] == "2024-01-01"
    assert config["source"]["id_type"] == "int"
    assert config["contract"]["min_rows"] == 20
    assert config["training"]["hyperparameters"]["max_iter"] == 300
