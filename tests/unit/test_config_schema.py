"""The committed JSON Schema of a model file is what the typed configuration generates, accepts every
model file the project ships and refuses a bad value; the method enums match Evidently's registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import jsonschema
import pytest

from include.retraining.core.config import CategoricalMethod, NumericMethod
from include.retraining.core.drift import CONTINGENCY_TEST
from include.retraining.core.schema import SCHEMA_FILE, model_file_schema, render

ROOT = Path(__file__).parents[2]
MODEL_FILES = sorted([*ROOT.glob("include/models/*.json"), *ROOT.glob("bench/backtest/models/*.json")])


def test_the_committed_schema_is_the_generated_one():
    assert SCHEMA_FILE.read_text() == render(), "the configuration changed: run make config-schema and commit"


@pytest.mark.parametrize("path", MODEL_FILES, ids=[path.stem for path in MODEL_FILES])
def test_every_shipped_model_file_is_valid(path):
    jsonschema.validate(json.loads(path.read_text()), model_file_schema())


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"drift": {"max_rows": "abc"}}, ["drift", "max_rows"]),
        ({"gate": {"flor": 0.7}}, ["gate"]),
        ({"drift": {"numeric_method": "nonexistent"}}, ["drift", "numeric_method"]),
        ({"model_name": None}, ["model_name"]),
    ],
)
def test_a_bad_model_file_is_refused_where_it_is_wrong(change, path):
    model = json.loads(MODEL_FILES[0].read_text())
    for section, value in change.items():
        model[section] = model.get(section, {}) | value if isinstance(value, dict) else value

    with pytest.raises(jsonschema.ValidationError) as raised:
        jsonschema.validate(model, model_file_schema())

    assert list(raised.value.absolute_path) == path


def test_a_model_file_may_leave_out_what_the_shared_defaults_supply():
    model = json.loads(MODEL_FILES[0].read_text())
    for section in ("storage", "monitoring", "drift", "gate", "notify", "performance"):
        model.pop(section, None)
    model["mlflow"] = {"experiment": "x"}  # tracking_uri comes from the defaults

    jsonschema.validate(model, model_file_schema())


def test_comment_keys_are_allowed():
    model = json.loads(MODEL_FILES[0].read_text()) | {"_onboarding": {"unsure": ["Age"]}}
    model["source"] = model["source"] | {"_comment": "UTC"}

    jsonschema.validate(model, model_file_schema())


def registered(column_type) -> set[str]:
    from evidently.legacy.calculations.stattests import registry
    from evidently.legacy.core import ColumnType

    kind = {"numeric": ColumnType.Numerical, "categorical": ColumnType.Categorical}[column_type]
    return {name for name, tests in registry._registered_stat_tests.items() if kind in tests}


def test_the_method_enums_are_evidentlys_registered_tests():
    from include.retraining.core.drift import register_contingency_test

    register_contingency_test()
    assert set(get_args(NumericMethod)) == registered("numeric")
    assert set(get_args(CategoricalMethod)) == registered("categorical")
    assert CONTINGENCY_TEST in get_args(CategoricalMethod)
