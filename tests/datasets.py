"""Real public datasets bundled with scikit-learn, one per objective, shaped as a model's data and config.

- binary: breast cancer, label ``diagnosis`` with string classes ("benign", "malignant"), positive "malignant";
- multiclass: digits 0-4, label ``digit`` with string classes "zero".."four";
- regression: diabetes, label ``progression`` (a disease-progression score, 25-346).
Feature names lose their spaces and parentheses so they are plain MongoDB field names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from include.retraining.core.config import FeatureSpec, LabelSpec, PipelineConfig, with_overrides

DIGIT_NAMES = ("zero", "one", "two", "three", "four")
SMALL_TRAINING = {
    "estimator": "gradient_boosting",
    "hyperparameters": {"max_iter": 40, "max_depth": 4},
    "min_holdout_rows": 50,
}


@dataclass(frozen=True)
class Dataset:
    objective: str
    frame: pd.DataFrame  # the features and the label column
    label: LabelSpec
    gate: dict[str, Any]  # a floor each objective's model clears comfortably on this data

    @property
    def features(self) -> tuple[FeatureSpec, ...]:
        return tuple(FeatureSpec(name, "numeric") for name in self.frame.columns if name != self.label.name)


def _plain(name: str) -> str:
    return re.sub(r"\W+", "_", name).strip("_")


def _frame(bunch: Any) -> pd.DataFrame:
    features = pd.DataFrame(bunch.data, columns=[_plain(name) for name in bunch.feature_names])
    return features.astype("float64")


def load(objective: str) -> Dataset:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

    if objective == "binary":
        bunch = load_breast_cancer()
        frame = _frame(bunch).assign(diagnosis=[str(bunch.target_names[t]) for t in bunch.target])
        label = LabelSpec("diagnosis", "binary", ("benign", "malignant"), positive_class="malignant")
        return Dataset(objective, frame, label, {"floor": 0.9})
    if objective == "multiclass":
        bunch = load_digits()
        keep = bunch.target < len(DIGIT_NAMES)
        frame = _frame(bunch)[keep].reset_index(drop=True)
        frame["digit"] = [DIGIT_NAMES[t] for t in bunch.target[keep]]
        return Dataset(objective, frame, LabelSpec("digit", "multiclass", DIGIT_NAMES), {"floor": 0.85})
    bunch = load_diabetes(scaled=False)
    frame = _frame(bunch).assign(progression=bunch.target.astype("float64"))
    label = LabelSpec("progression", "regression", min=0.0, max=500.0)
    return Dataset(objective, frame, label, {"floor": 80.0})  # RMSE: lower is better, the floor is a ceiling


def configure(config: PipelineConfig, dataset: Dataset, **training: Any) -> PipelineConfig:
    """``config`` for ``dataset``: its label and features, a small model, the objective's default metric."""
    return with_overrides(
        config,
        contract={"label": dataset.label, "features": dataset.features, "min_rows": 300},
        training=SMALL_TRAINING | training,
        gate={"primary_metric": None, **dataset.gate},
    )
