"""The estimator: a scikit-learn Pipeline built from the data contract, seeded end to end.

Every core is used (``n_jobs=-1`` where the estimator has it; histogram gradient boosting uses all
cores through OpenMP). Gradient boosting takes the contract's categories as ordinal codes and splits
on them natively, so it needs neither one-hot columns nor scaling; the other estimators get both.
The estimator is the classifier or the regressor of the configured name, by the label's objective.
A window larger than ``training.max_rows`` is trained on a sample of that many rows, stratified on the
label for classification.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from include.retraining.core.config import ConfigError, ContractConfig, LabelSpec, TrainingConfig, estimator_class

NATIVE_CATEGORICAL = ("gradient_boosting",)  # estimators that split on category codes themselves
JOBLIB_PARALLEL = ("random_forest",)  # estimators whose n_jobs spreads the work over cores (-1: all)


def build_pipeline(contract: ContractConfig, training: TrainingConfig) -> Pipeline:
    if training.estimator in NATIVE_CATEGORICAL:
        return _native_categorical_pipeline(contract, training)
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                contract.numeric_features,
            ),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                contract.categorical_features,
            ),
        ]
    )
    return Pipeline([("preprocess", preprocess), ("estimator", build_estimator(training, contract.label.objective))])


def _native_categorical_pipeline(contract: ContractConfig, training: TrainingConfig) -> Pipeline:
    """Numbers as they are (missing values are learned, not imputed), categories as codes in the contract's
    order; an unseen or missing category becomes NaN, the estimator's "missing" branch."""
    categorical = [f for f in contract.features if f.kind == "categorical"]
    codes = OrdinalEncoder(
        categories=[list(f.categories) for f in categorical] if all(f.categories for f in categorical) else "auto",
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
    )
    preprocess = ColumnTransformer(
        [("numeric", "passthrough", contract.numeric_features), ("categorical", codes, contract.categorical_features)]
    )
    is_categorical = [False] * len(contract.numeric_features) + [True] * len(categorical)
    estimator = build_estimator(training, contract.label.objective, categorical_features=is_categorical)
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])


def build_estimator(training: TrainingConfig, objective: str = "binary", **defaults: Any) -> Any:
    cls = estimator_class(training.estimator, objective)
    defaults = {"random_state": training.seed, **defaults}
    if training.estimator in JOBLIB_PARALLEL:
        defaults["n_jobs"] = -1  # every core, unless the hyperparameters say otherwise
    try:
        return cls(**(defaults | training.hyperparameters))
    except TypeError as error:
        given = sorted(training.hyperparameters)
        raise ConfigError(f"training.hyperparameters {given} do not fit {cls.__name__}: {error}") from error


def training_sample(train: pd.DataFrame, contract: ContractConfig, training: TrainingConfig) -> pd.DataFrame:
    """At most ``training.max_rows`` rows: a sample stratified on a class label (every class keeps its
    share), seeded with ``training.seed``, so the same window always trains on the same rows."""
    if training.max_rows is None or len(train) <= training.max_rows:
        return train
    positions, _ = train_test_split(  # positions, not rows: the rows left out are never copied
        np.arange(len(train)),
        train_size=training.max_rows,
        random_state=training.seed,
        stratify=_strata(train, contract),
    )
    return train.iloc[positions]


def split_holdout(
    frame: pd.DataFrame, contract: ContractConfig, training: TrainingConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified on a class label so a rare class is present on both sides; a regression target is split
    at random."""
    return train_test_split(
        frame, test_size=training.holdout_share, random_state=training.seed, stratify=_strata(frame, contract)
    )


def _strata(frame: pd.DataFrame, contract: ContractConfig) -> pd.Series | None:
    return frame[contract.label.name] if contract.label.is_classification else None


def features_and_label(frame: pd.DataFrame, contract: ContractConfig) -> tuple[pd.DataFrame, pd.Series]:
    return frame[contract.feature_names], frame[contract.label.name]


def recency_weights(stamps: pd.Series, half_life_days: float | None) -> np.ndarray | None:
    """0.5 ** (age in days / half-life), the age counted from the newest row; None: equal weights."""
    if half_life_days is None or stamps.empty:
        return None
    age_days = (stamps.max() - stamps).dt.total_seconds().to_numpy() / 86_400
    return np.power(0.5, age_days / half_life_days)


def fit_recent(
    rows: pd.DataFrame, contract: ContractConfig, training: TrainingConfig, timestamp_field: str
) -> Pipeline:
    """The configured pipeline fitted on ``rows``, each weighted by its recency when
    ``training.recency_half_life_days`` is set: what the train and refit stages (and the backtest) fit."""
    weights = recency_weights(rows[timestamp_field], training.recency_half_life_days)
    return fit(rows[[*contract.feature_names, contract.label.name]], contract, training, weights)


def fit(
    train: pd.DataFrame, contract: ContractConfig, training: TrainingConfig, weights: np.ndarray | None = None
) -> Pipeline:
    """The pipeline fitted on ``train``; ``weights`` (e.g. ``windows.recency_weights``) per row, if any."""
    features, label = features_and_label(train, contract)
    fit_params = {} if weights is None else {"estimator__sample_weight": weights}
    return build_pipeline(contract, training).fit(features, label, **fit_params)


def label_metrics(values: pd.Series, label: LabelSpec) -> dict[str, float]:
    """What the training rows' label looks like, logged with the model: the positive share (binary), the
    number of classes seen (multiclass) or the target's mean and spread (regression)."""
    if label.objective == "binary":
        return {"positive_share": float((values == label.positive_class).mean())}
    if label.objective == "multiclass":
        return {"classes_in_training": float(values.nunique())}
    return {"label_mean": float(values.mean()), "label_std": float(values.std(ddof=0))}
