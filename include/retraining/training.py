"""The estimator: a scikit-learn Pipeline built from the data contract, seeded end to end."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from include.retraining.config import ContractConfig, TrainingConfig

ESTIMATOR_CLASSES: dict[str, type] = {
    "random_forest": RandomForestClassifier,
    "gradient_boosting": HistGradientBoostingClassifier,
    "logistic_regression": LogisticRegression,
}


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
    estimator_class = ESTIMATOR_CLASSES[training.estimator]
    try:
        return estimator_class(random_state=training.seed, **training.hyperparameters)
    except TypeError as error:
        given = sorted(training.hyperparameters)
        raise ValueError(f"training.hyperparameters {given} do not fit {estimator_class.__name__}: {error}") from error


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
