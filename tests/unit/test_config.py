"""The typed configuration: defaults, deep-merged overrides, and errors that name the offending key."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError

import pytest

from include.retraining.core.config import (
    DEFAULT_CONFIG,
    DEFAULT_START_DATE,
    DEFAULTS_FILE,
    ConfigError,
    PipelineConfig,
    ResolvedConfig,
    deep_merge,
    load_config,
    resolved,
    with_overrides,
)
from include.retraining.core.records import RecordError


def test_defaults_load_the_vehicle_insurance_example():
    config = load_config()

    raw = json.loads(DEFAULT_CONFIG.read_text())
    assert isinstance(config, PipelineConfig)
    assert config.model_name == raw["model_name"]
    assert config.source.collection == raw["source"]["collection"]
    assert config.source.id_type == "objectid"  # a dataclass default, absent from the file
    assert config.contract.label.name == "Response"
    assert config.contract.label.classes == (0, 1)
    assert config.contract.feature_names == [f["name"] for f in raw["contract"]["features"]]
    assert config.contract.categorical_features == ["Gender", "Vehicle_Age", "Vehicle_Damage"]
    assert "Age" in config.contract.numeric_features
    assert len(config.contract.numeric_features) + len(config.contract.categorical_features) == 10
    assert config.contract.features[1].min == 18
    assert config.training.hyperparameters == raw["training"]["hyperparameters"]
    shared = json.loads(DEFAULTS_FILE.read_text())
    assert config.notify.recipients == tuple(shared["notify"]["recipients"])  # from the shared defaults
    assert config.storage.bucket == shared["storage"]["bucket"]
    assert config.mlflow.experiment == raw["mlflow"]["experiment"]  # the model's section merged over them


def test_the_model_file_is_merged_over_the_shared_defaults(tmp_path):
    model = json.loads(DEFAULT_CONFIG.read_text())
    model["gate"] = {"floor": 0.75}
    model["storage"] = {"prefix": "team-b"}
    base = tmp_path / "team_b.json"
    base.write_text(json.dumps(model))

    config = load_config(base=base)

    shared = json.loads(DEFAULTS_FILE.read_text())
    assert config.gate.floor == 0.75
    assert config.gate.min_improvement == shared["gate"]["min_improvement"]  # the rest of the section stays
    assert config.storage.prefix == "team-b"
    assert config.storage.bucket == shared["storage"]["bucket"]


def test_start_date_defaults_early_and_is_read_from_the_model_file(tmp_path):
    assert load_config().start_date == DEFAULT_START_DATE
    assert load_config({"start_date": "2014-01-01"}).start_date == "2014-01-01"
    with pytest.raises(ConfigError, match=r"start_date '01/01/2014' is not an ISO date: write it as YYYY-MM-DD"):
        load_config({"start_date": "01/01/2014"})


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", r"broken\.json is not valid JSON"), ("[1, 2]", r"broken\.json holds a list, not a JSON object")],
)
def test_a_model_file_that_is_no_json_object_names_the_file(tmp_path, content, message):
    base = tmp_path / "broken.json"
    base.write_text(content)

    with pytest.raises(ConfigError, match=message):
        load_config(base=base)


def test_a_resolved_config_round_trips_its_xcom_form_and_keeps_its_hash():
    record = resolved("vehicle_insurance", load_config())

    again = ResolvedConfig.from_dict(json.loads(json.dumps(record.to_dict())))  # as XCom stores it

    assert again == record
    assert len(record.sha256) == 64
    assert resolved("vehicle_insurance", load_config({"gate": {"floor": 0.61}})).sha256 != record.sha256


def test_a_resolved_config_whose_content_was_edited_is_refused():
    data = resolved("vehicle_insurance", load_config()).to_dict()
    data["config"]["source"]["collection"] = "elsewhere"

    with pytest.raises(RecordError, match=r"resolved config of vehicle_insurance: sha256 .* does not match"):
        ResolvedConfig.from_dict(data)


def test_config_is_frozen():
    config = load_config()
    with pytest.raises(FrozenInstanceError):
        config.model_name = "other"  # type: ignore[misc]


def test_overrides_are_deep_merged_in_order_later_wins():
    config = load_config(
        {"source": {"collection": "first", "lookback_hours": 24}, "training": {"hyperparameters": {"max_depth": 3}}},
        None,  # an empty layer (e.g. an unset Variable) changes nothing
        {"source": {"collection": "second"}},
    )

    assert config.source.collection == "second"
    assert config.source.lookback_hours == 24
    assert config.source.database == "insurance"  # untouched sibling keys survive the merge
    assert config.training.hyperparameters["max_depth"] == 3
    assert config.training.hyperparameters["max_iter"] == 400


def test_deep_merge_leaves_its_inputs_alone():
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    override = {"a": {"b": 10}, "e": {"f": 4}}

    merged = deep_merge(base, override)

    assert merged == {"a": {"b": 10, "c": 2}, "d": 3, "e": {"f": 4}}
    assert base == {"a": {"b": 1, "c": 2}, "d": 3}
    assert override == {"a": {"b": 10}, "e": {"f": 4}}


def test_deep_merge_replaces_a_mapping_with_a_scalar():
    assert deep_merge({"a": {"b": 1}}, {"a": None}) == {"a": None}


def test_unknown_key_names_its_path():
    with pytest.raises(ConfigError) as raised:
        load_config({"source": {"colection": "typo"}})

    message = str(raised.value)
    assert "config.source" in message
    assert "colection" in message
    assert "collection" in message  # the allowed keys are listed


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match=r"config\.schedule: unknown key: remove it"):
        load_config({"schedule": "daily"})


def test_unknown_key_inside_a_list_of_records():
    features = json.loads(DEFAULT_CONFIG.read_text())["contract"]["features"]
    features[2] = {**features[2], "maximum": 5}
    with pytest.raises(ConfigError, match=r"config\.contract\.features\[2\]\.maximum: unknown key"):
        load_config({"contract": {"features": features}})


@pytest.mark.parametrize(
    ("override", "path", "value"),
    [
        ({"source": {"id_type": "uuid"}}, "config.source.id_type", "'uuid'"),
        ({"source": {"timestamp_type": "unix"}}, "config.source.timestamp_type", "'unix'"),
        (
            {"contract": {"features": [{"name": "Age", "kind": "text"}]}},
            r"config.contract.features[0].kind",
            "'text'",
        ),
    ],
)
def test_value_outside_a_literal_is_refused(override, path, value):
    with pytest.raises(ConfigError) as raised:
        load_config(override)

    assert path in str(raised.value)
    assert value in str(raised.value)


def test_missing_required_key_is_a_config_error(tmp_path):
    raw = json.loads(DEFAULT_CONFIG.read_text())
    del raw["mlflow"]["experiment"]
    base = tmp_path / "partial.json"
    base.write_text(json.dumps(raw))

    with pytest.raises(ConfigError, match=r"config\.mlflow.*experiment"):
        load_config(base=base)


def test_a_section_that_is_not_an_object():
    with pytest.raises(ConfigError, match=r"config\.gate: got 'strict', expected an object"):
        load_config({"gate": "strict"})


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"gate": {"primary_metric": "auc"}}, "gate.primary_metric 'auc' is not a metric of objective binary: use"),
        ({"contract": {"label": {"classes": [1]}}}, "contract.label.classes needs at least two classes"),
        ({"start_date": "31/01/2024"}, "start_date '31/01/2024' is not an ISO date: write it as YYYY-MM-DD"),
    ],
)
def test_range_checks(override, expected):
    with pytest.raises(ConfigError) as raised:
        load_config(override)

    assert expected in str(raised.value)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_range_bounds_are_inclusive(share):
    config = load_config({"contract": {"max_quarantine_share": share}})
    assert config.contract.max_quarantine_share == share


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as raised:
        load_config({"gate": {"min_improvement": -1, "confidence": 5}, "training": {"estimator": "svm"}})

    message = str(raised.value)
    assert message.startswith("invalid configuration: ")
    assert message.count(";") == 2
    for part in ("gate.min_improvement", "gate.confidence", "training.estimator"):
        assert part in message


def test_with_overrides_replaces_fields_of_sections():
    config = load_config()

    changed = with_overrides(config, gate={"floor": 0.7, "min_improvement": 0.01}, source={"collection": "other"})

    assert changed.gate.floor == 0.7
    assert changed.gate.min_improvement == 0.01
    assert changed.gate.primary_metric == config.gate.primary_metric
    assert changed.source.collection == "other"
    assert changed.source.database == config.source.database
    assert config.gate.floor == 0.6  # the original is untouched
    assert config.source.collection == "vehicle_insurance"


def test_with_overrides_replaces_a_whole_field_not_a_merge():
    config = load_config()

    changed = with_overrides(config, training={"hyperparameters": {"max_iter": 5}})

    assert changed.training.hyperparameters == {"max_iter": 5}


def test_with_overrides_checks_ranges_again():
    with pytest.raises(ConfigError, match=r"gate\.primary_metric 'log_loss'"):
        with_overrides(load_config(), gate={"primary_metric": "log_loss"})


def test_with_overrides_refuses_unknown_fields():
    with pytest.raises(ConfigError, match=r"config\.gate\.flor: unknown key: did you mean 'floor'\?"):
        with_overrides(load_config(), gate={"flor": 0.7})


def test_keys_starting_with_an_underscore_are_comments():
    notes = {"_onboarding": {"unsure": ["check Age"]}, "source": {"_comment": "ISO strings, UTC", "id_type": "auto"}}

    config = load_config(notes, {"start_date": "2024-01-31"})

    assert config.source.id_type == "auto"
    assert config.start_date == "2024-01-31"
    assert config.source.timestamp_type == "date"  # the default form
