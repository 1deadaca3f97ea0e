"""Every kind of bad configuration value fails on load with a message naming the key path, the value and
the fix: in a model file, in the retrain_config Variables, and in resolve_config (not retried)."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.retraining.airflow.runtime import layered_config
from include.retraining.airflow.task import failing_fast
from include.retraining.core.config import DEFAULT_CONFIG, ConfigError, load_config

FEATURES = json.loads(DEFAULT_CONFIG.read_text())["contract"]["features"]


def feature(index: int, **changes) -> dict:
    """The example's features with feature ``index`` changed (a list override replaces the whole list)."""
    return {"contract": {"features": [dict(f, **changes) if i == index else f for i, f in enumerate(FEATURES)]}}


# (override, the key path the message must name, a fragment saying what is wrong or how to fix it)
BAD = [
    # wrong type
    ({"drift": {"max_rows": "abc"}}, "config.drift.max_rows", "got 'abc', expected a whole number"),
    ({"contract": {"min_rows": "x"}}, "config.contract.min_rows", "expected a whole number"),
    ({"contract": {"min_rows": "500"}}, "config.contract.min_rows", "got '500', expected a whole number"),
    ({"contract": {"min_rows": 500.5}}, "config.contract.min_rows", "expected a whole number"),
    ({"contract": {"min_rows": True}}, "config.contract.min_rows", "got True, expected a whole number"),
    ({"gate": {"confidence": "high"}}, "config.gate.confidence", "expected a number"),
    ({"drift": {"false_alarm_rate": "0.01"}}, "config.drift.false_alarm_rate", "expected a number"),
    ({"training": {"refit": "yes"}}, "config.training.refit", "expected true or false"),
    ({"training": {"forget_on_performance_drift": 1}}, "config.training.forget_on_performance_drift", "true or false"),
    ({"source": {"collection": 7}}, "config.source.collection", "got 7, expected a string"),
    ({"notify": {"recipients": "ml-team@example.com"}}, "config.notify.recipients", "expected a list"),
    ({"training": {"hyperparameters": [1, 2]}}, "config.training.hyperparameters", "expected an object"),
    ({"performance": "strict"}, "config.performance", "expected an object"),
    (feature(2, categories="Yes"), "config.contract.features[2].categories", "expected a list"),
    (feature(1, min="18"), "config.contract.features[1].min", "expected a number"),
    # out of range
    ({"gate": {"bootstrap_rounds": -5}}, "config.gate.bootstrap_rounds", "got -5, out of range: use a value >= 10"),
    ({"drift": {"false_alarm_rate": 0}}, "config.drift.false_alarm_rate", "got 0, out of range: use a value > 0"),
    ({"drift": {"false_alarm_rate": 0.9}}, "config.drift.false_alarm_rate", "use a value <= 0.5"),
    ({"monitoring": {"min_new_documents": -1}}, "config.monitoring.min_new_documents", "use a value >= 1"),
    ({"monitoring": {"grace_seconds": -1}}, "config.monitoring.grace_seconds", "use a value >= 0"),
    ({"contract": {"min_rows": 0}}, "config.contract.min_rows", "use a value >= 1"),
    ({"contract": {"max_quarantine_share": 1.5}}, "config.contract.max_quarantine_share", "use a value <= 1"),
    ({"training": {"holdout_share": 1}}, "config.training.holdout_share", "use a value < 1"),
    ({"training": {"window_days": 0}}, "config.training.window_days", "use a value > 0"),
    ({"training": {"recency_half_life_days": -7}}, "config.training.recency_half_life_days", "use a value > 0"),
    ({"source": {"lookback_hours": 0}}, "config.source.lookback_hours", "use a value > 0"),
    ({"gate": {"confidence": 0.3}}, "config.gate.confidence", "use a value >= 0.5"),
    ({"gate": {"min_improvement": -0.01}}, "config.gate.min_improvement", "use a value >= 0"),
    ({"performance": {"confidence": 1}}, "config.performance.confidence", "use a value < 1"),
    ({"performance": {"min_labels": 0}}, "config.performance.min_labels", "use a value >= 10"),
    ({"drift": {"max_rows": 10}}, "config.drift.max_rows", "use a value >= 100"),
    (feature(1, max_null_share=2), "config.contract.features[1].max_null_share", "use a value <= 1"),
    ({"notify": {"recipients": []}}, "config.notify.recipients", "too short: list at least 1"),
    ({"contract": {"features": []}}, "config.contract.features", "too short: list at least 1"),
    ({"source": {"database": ""}}, "config.source.database", "empty: write a name"),
    # unknown enum value
    ({"drift": {"numeric_method": "nonexistent"}}, "config.drift.numeric_method", "not one of 'anderson'"),
    ({"drift": {"categorical_method": "ks"}}, "config.drift.categorical_method", "got 'ks', not one of"),
    ({"drift": {"dataset_rule": "all_columns"}}, "config.drift.dataset_rule", "not one of 'any_column' or 'share'"),
    ({"drift": {"retrain_on": "never"}}, "config.drift.retrain_on", "not one of 'any_drift'"),
    ({"training": {"estimator": "xgboost"}}, "config.training.estimator", "got 'xgboost', not one of"),
    ({"source": {"id_type": "uuid"}}, "config.source.id_type", "got 'uuid', not one of"),
    ({"source": {"timestamp_type": "unix"}}, "config.source.timestamp_type", "not one of 'date'"),
    ({"contract": {"label": {"objective": "ordinal"}}}, "config.contract.label.objective", "got 'ordinal'"),
    (feature(0, kind="text"), "config.contract.features[0].kind", "not one of 'numeric' or 'categorical'"),
    # unknown key
    ({"drift": {"max_row": 100}}, "config.drift.max_row", "unknown key: did you mean 'max_rows'?"),
    ({"gate": {"flor": 0.7}}, "config.gate.flor", "did you mean 'floor'?"),
    ({"schedule": "daily"}, "config.schedule", "unknown key: remove it"),
    (feature(2, maximum=5), "config.contract.features[2].maximum", "unknown key"),
    ({"training": {"window": 30}}, "config.training.window", "unknown key"),
    # missing key
    ({"mlflow": {"experiment": None}}, "config.mlflow.experiment", "got None, expected a string"),
    ({"contract": {"features": [{"name": "Age"}]}}, "config.contract.features[0].kind", "is missing: add it"),
    ({"contract": {"label": {"objective": "binary", "classes": [0, 1], "name": None}}}, "label.name", "string"),
    # cross-field
    ({"training": {"max_holdout_rows": 50}}, "training.max_holdout_rows (50)", "at least training.min_holdout_rows"),
    ({"gate": {"primary_metric": "rmse"}}, "gate.primary_metric 'rmse'", "use one of ['roc_auc'"),
    ({"start_date": "31/01/2024"}, "start_date '31/01/2024'", "write it as YYYY-MM-DD"),
]


@pytest.mark.parametrize(("override", "key", "fix"), BAD, ids=[f"{i}-{key}" for i, (_, key, _) in enumerate(BAD)])
def test_a_bad_value_names_its_key_and_the_fix(override, key, fix):
    with pytest.raises(ConfigError) as raised:
        load_config(override)

    message = str(raised.value)
    assert message.startswith("invalid configuration: ")
    assert key in message
    assert fix in message


def test_the_table_covers_every_kind_of_bad_value():
    assert len(BAD) >= 30


def test_a_model_file_with_a_bad_value_fails_naming_the_file_key(tmp_path):
    raw = json.loads(DEFAULT_CONFIG.read_text())
    raw["drift"] = {"max_rows": "abc"}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(raw))

    with pytest.raises(ConfigError, match=r"config\.drift\.max_rows: got 'abc', expected a whole number"):
        load_config(base=broken)


@pytest.mark.parametrize("variable", ["retrain_config", "retrain_config_vehicle_insurance"])
def test_a_bad_variable_fails_resolve_config_on_its_first_try(variable):
    deployment = {variable: json.dumps({"gate": {"bootstrap_rounds": -5}})}

    with pytest.raises(AirflowFailException) as raised:  # failing_fast: no retry would read anything else
        failing_fast(lambda: layered_config("vehicle_insurance", deployment, {}))

    assert "ConfigError (not retried): invalid configuration: config.gate.bootstrap_rounds: got -5" in str(raised.value)
