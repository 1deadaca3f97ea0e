"""The run Params, declared once: each knob names the config key it overrides.

The DAG's trigger form (``dag_params``) and the config layering (``param_overrides``) are both
generated from ``KNOBS``. Imported at DAG parse time: the standard library and ``airflow.sdk`` only.
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
    when_empty: str = "configured value"


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
        "the configured lookback (everything when none is configured)",
    ),
    Knob(
        "drift_share_threshold",
        ("drift", "drift_share_threshold"),
        "number",
        0,
        1,
        "Drift share threshold",
        "Dataset drift when at least this share of columns drifted.",
        "configured value (0.3)",
    ),
    hyperparameter("max_iter", 10, 2000, "Boosting iterations"),
    hyperparameter("max_depth", 1, 100, "Max depth"),
    hyperparameter("min_samples_leaf", 1, 1000, "Min samples per leaf"),
    Knob(
        "min_improvement",
        ("gate", "min_improvement"),
        "number",
        0,
        1,
        "Gate margin",
        "How much the challenger must beat the champion on the primary metric.",
    ),
)


def dag_params() -> dict[str, Any]:
    """The trigger form: ``force_retrain`` plus one optional field per knob (empty = configured value)."""
    from airflow.sdk import Param

    params = {
        "force_retrain": Param(
            False, type="boolean", title="Force retrain", description="Train, evaluate and register even without drift."
        )
    }
    for knob in KNOBS:
        bounds = {"minimum": knob.minimum} | ({"maximum": knob.maximum} if knob.maximum is not None else {})
        description = f"{knob.description} Empty: {knob.when_empty}."
        params[knob.name] = Param(None, type=["null", knob.kind], title=knob.title, description=description, **bounds)
    return params


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
