"""The run Params, declared once: each knob names the config key it overrides.

The DAG's trigger form (``dag_params``) and the config layering (``param_overrides``) are both
generated from ``KNOBS``. Each field says what an empty field falls back to, read from the model's
config file (over the shared defaults) when the DAG is built (no Variable, no network), and its bounds: the form
moves a number outside them to the nearest bound before it submits. Imported at DAG parse time: the
standard library and ``airflow.sdk`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Knob:
    name: str
    target: tuple[str, ...]  # the config key it overrides, e.g. ("gate", "min_improvement")
    kind: Literal["integer", "number"]
    minimum: float
    maximum: float | None
    title: str
    description: str
    when_unset: str = "no value"  # what the pipeline does when the config sets no value either


def hyperparameter(name: str, minimum: int, maximum: int, title: str) -> Knob:
    return Knob(name, ("training", "hyperparameters", name), "integer", minimum, maximum, title, f"Estimator {name}.")


KNOBS = (
    Knob(
        "lookback_hours",
        ("source", "lookback_hours"),
        "integer",
        1,
        None,
        "Lookback (hours)",
        "Only read documents ingested this many hours before the run's end.",
        "the run reads the sliding window of training.window_days days before its end",
    ),
    Knob(
        "false_alarm_rate",
        ("drift", "false_alarm_rate"),
        "number",
        0.0001,
        0.5,
        "Drift false-alarm rate",
        "The share of stationary windows allowed to raise a drift alarm: a column drifts when its test's "
        "p-value is below this rate divided by the number of columns (make calibrate measures it).",
    ),
    hyperparameter("max_iter", 10, 2000, "Boosting iterations"),
    hyperparameter("max_depth", 1, 100, "Max depth"),
    hyperparameter("min_samples_leaf", 1, 1000, "Min samples per leaf"),
    Knob(
        "min_improvement",
        ("gate", "min_improvement"),
        "number",
        0,
        None,  # in the metric's units: an RMSE margin can be well above 1
        "Gate margin",
        "How much the challenger must beat the champion on the primary metric, in its units and direction "
        "(for RMSE: how much lower).",
    ),
)


def dag_params(configured: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The trigger form: ``force_retrain`` plus one optional field per knob (empty = the value
    ``configured`` in the file named ``source``).

    No field is required: each type admits null, which is also what makes the form leave out its
    required mark, so the ``force_retrain`` switch reads as the optional toggle it is."""
    from airflow.sdk import Param

    params = {
        "force_retrain": Param(
            False,
            type=["null", "boolean"],
            title="Force retrain",
            description="On: train, evaluate and register even without drift. Off (the default): retrain only on "
            "data drift, without a champion, or when the drift monitor triggered the run.",
        )
    }
    for knob in KNOBS:
        bounds = {"minimum": knob.minimum} | ({"maximum": knob.maximum} if knob.maximum is not None else {})
        description = f"{knob.description} Empty: {fallback(knob, configured, source)}. {bounds_text(knob)}"
        params[knob.name] = Param(None, type=["null", knob.kind], title=knob.title, description=description, **bounds)
    return params


def fallback(knob: Knob, defaults: Mapping[str, Any], source: str) -> str:
    """What an empty field means, e.g. ``gate.min_improvement = 0.005 in vehicle_insurance.json``."""
    key = ".".join(knob.target)
    value: Any = defaults
    for part in knob.target:
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return f"{key} is not set in {source}, so {knob.when_unset} (unless a retrain_config Variable sets it)"
    return f"{key} = {value} in {source}, unless a retrain_config Variable overrides it"


def bounds_text(knob: Knob) -> str:
    kind = "A whole number" if knob.kind == "integer" else "A number"
    low = _number(knob.minimum)
    if knob.maximum is None:
        return f"{kind}, at least {low}; the form raises a smaller value to {low}."
    high = _number(knob.maximum)
    return f"{kind} from {low} to {high}; the form moves a value outside to the nearest bound."


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def param_overrides(params: Mapping[str, Any]) -> dict[str, Any]:
    """The config overrides a run's Params ask for; Params left empty (None) keep the configured value."""
    overrides: dict[str, Any] = {}
    for knob in KNOBS:
        if params.get(knob.name) is None:
            continue
        node = overrides
        for key in knob.target[:-1]:
            node = node.setdefault(key, {})
        node[knob.target[-1]] = params[knob.name]
    return overrides
