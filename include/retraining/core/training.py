"""The estimator: a scikit-learn Pipeline built from the data contract, seeded end to end."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from include.retraining.core.config import ConfigError, ContractConfig, TrainingConfig, estimator_class


def build_pipeline(contract: ContractConfig, training: TrainingConfig) -> Pipeline:
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
    return Pipeline([("preprocess", preprocess), ("estimator", build_estimator(training))])


def build_estimator(training: TrainingConfig) -> Any:
    cls = estimator_class(training.estimator)
    try:
        return cls(random_state=training.seed, **training.hyperparameters)
    except TypeError as error:
        given = sorted(training.hyperparameters)
        raise ConfigError(f"training.hyperparameters {given} do not fit {cls.__name__}: {error}") from error


def split_holdout(
    frame: pd.DataFrame, contract: ContractConfig, training: TrainingConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified so a rare positive class is present on both sides."""
    return train_test_split(
        frame,
        test_size=training.holdout_share,
        random_state=training.seed,
        stratify=frame[contract.label.name],
    )


def features_and_label(frame: pd.DataFrame, contract: ContractConfig) -> tuple[pd.DataFrame, pd.Series]:
    return frame[contract.feature_names], frame[contract.label.name]


def fit(train: pd.DataFrame, contract: ContractConfig, training: TrainingConfig) -> Pipeline:
    features, label = features_and_label(train, contract)
    return build_pipeline(contract, training).fit(features, label)
