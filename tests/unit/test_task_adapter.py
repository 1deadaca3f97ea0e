"""The one task adapter and the Params declaration, without a scheduler."""

from __future__ import annotations

import json

import pytest

from include.retraining.airflow.params import KNOBS, dag_params, param_overrides
from include.retraining.airflow.task import call_stage, typed_records
from include.retraining.core.config import DEFAULT_CONFIG, PipelineConfig, load_config, merged_config
from include.retraining.core.graph import RETRAIN
from include.retraining.core.records import Decision, DriftResult, RecordError, RunInfo
from tests.unit.test_records import DRIFT

RUN = RunInfo(dag_id="retrain_vehicle_insurance", run_id="manual__1", run_end="2024-05-01T00:00:00+00:00")


def stage(config: PipelineConfig, run: RunInfo, drift: DriftResult, decision: Decision | None) -> Decision:
    assert isinstance(config, PipelineConfig)
    assert run == RUN
    assert drift == DRIFT
    return Decision(retrain=decision is None, reason=f"{config.model_name}: {drift.status}")


def test_the_stage_is_called_with_its_records_by_name_and_the_config_and_run():
    config = load_config()

    result = call_stage(stage, {"drift": DRIFT, "decision": None}, lambda: config, lambda: RUN)

    assert result == Decision(retrain=True, reason=f"{config.model_name}: drift")


def test_config_and_run_are_resolved_only_when_the_stage_asks_for_them():
    def pure(drift: DriftResult) -> str:
        return drift.status

    def unreachable():
        raise AssertionError("resolved without need")

    assert call_stage(pure, {"drift": DRIFT}, unreachable, unreachable) == "drift"


def test_records_are_rebuilt_as_the_type_of_the_stage_that_makes_them_and_none_stays_none():
    xcoms = {"drift": DRIFT.to_dict(), "decision": None}

    assert typed_records(RETRAIN, "skip", xcoms) == {"drift": DRIFT, "decision": None}


def test_a_malformed_xcom_names_the_stage_and_the_record():
    with pytest.raises(RecordError, match=r"skip\(drift\)"):
        typed_records(RETRAIN, "skip", {"drift": {"status": "drift"}, "decision": None})


def example_params() -> dict:
    return dag_params(merged_config(DEFAULT_CONFIG), DEFAULT_CONFIG.name)


def test_every_knob_is_a_nullable_param_and_overrides_its_config_key():
    params = example_params()

    assert set(params) == {"force_retrain", *(knob.name for knob in KNOBS)}
    for knob in KNOBS:
        schema = params[knob.name].schema
        assert schema["type"] == ["null", knob.kind]
        assert schema["minimum"] == knob.minimum
        assert "Empty: " in params[knob.name].description
        for value in (knob.minimum, knob.maximum or knob.minimum + 1):
            overrides = param_overrides({knob.name: value})
            node = overrides
            for key in knob.target:
                node = node[key]
            assert node == value
            load_config(overrides)  # every target is a real config key, and the form's bounds are valid values


def test_no_field_of_the_trigger_form_is_marked_required():
    """Airflow 3.3's form marks a field required unless its type admits null."""
    for name, param in example_params().items():
        assert "null" in param.schema["type"], f"{name} would show a required mark"
    assert example_params()["force_retrain"].value is False


def test_each_optional_field_names_the_configured_value_it_falls_back_to(tmp_path):
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(json.loads(DEFAULT_CONFIG.read_text()) | {"gate": {"min_improvement": 0.0123}}))

    params = dag_params(merged_config(edited), edited.name)  # the file over the shared defaults

    assert "Empty: gate.min_improvement = 0.0123 in edited.json" in params["min_improvement"].description
    assert "Empty: drift.false_alarm_rate = 0.01 in edited.json" in params["false_alarm_rate"].description
    assert "source.lookback_hours is not set in edited.json, so the run reads the sliding window" in (
        params["lookback_hours"].description
    )


def test_each_number_field_states_the_bounds_the_form_clamps_to():
    params = example_params()

    assert "at least 1; the form raises a smaller value to 1" in params["lookback_hours"].description
    assert "A whole number from 10 to 2000" in params["max_iter"].description
    assert "A number, at least 0; the form raises a smaller value to 0" in params["min_improvement"].description
