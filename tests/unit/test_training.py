"""The estimator pipeline: built from the contract, seeded, and strict about its hyperparameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from include.retraining.core.config import (
    ESTIMATORS,
    ConfigError,
    estimator_class,
    estimators_for,
    load_config,
    with_overrides,
)
from include.retraining.core.training import (
    build_pipeline,
    features_and_label,
    fit,
    fit_recent,
    recency_weights,
    split_holdout,
    training_sample,
)

SMALL = {  # classifiers (the regressors: test_objectives.py)
    "random_forest": {"n_estimators": 20, "max_depth": 6, "class_weight": "balanced"},
    "gradient_boosting": {"max_iter": 20, "max_depth": 3},
    "logistic_regression": {"C": 0.5, "max_iter": 500},
}


@pytest.fixture(scope="module")
def data(make_frame, default_config) -> pd.DataFrame:
    frame = make_frame(1_200, seed=31)
    columns = [*default_config.contract.feature_names, default_config.contract.label.name]
    return frame[columns].assign(Response=frame["Response"].astype("int64"))


def config_for(estimator: str, seed: int = 42):
    return with_overrides(
        load_config(), training={"estimator": estimator, "hyperparameters": SMALL[estimator], "seed": seed}
    )


def test_every_classifier_has_a_small_test_setup():
    assert set(SMALL) == set(estimators_for("binary")) == set(estimators_for("multiclass"))
    assert set(estimators_for("binary")) < set(ESTIMATORS)


@pytest.mark.parametrize("estimator", estimators_for("binary"))
def test_build_fit_and_predict_each_estimator(estimator, data):
    config = config_for(estimator)
    train, holdout = split_holdout(data, config.contract, config.training)

    pipeline = build_pipeline(config.contract, config.training)
    model = fit(train, config.contract, config.training)

    assert isinstance(pipeline, Pipeline)
    expected_class, hyperparameters = estimator_class(estimator, "binary"), SMALL[estimator]
    step = model.named_steps["estimator"]
    assert isinstance(step, expected_class)
    assert step.random_state == 42
    for name, value in hyperparameters.items():
        assert getattr(step, name) == value
    features, label = features_and_label(holdout, config.contract)
    probabilities = model.predict_proba(features)
    assert probabilities.shape == (len(holdout), 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert list(model.classes_) == [0, 1]
    # the data has signal: any of the estimators ranks buyers above non-buyers
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(label, probabilities[:, 1]) > 0.7


def test_preprocessing_follows_the_contract(default_config):
    pipeline = build_pipeline(default_config.contract, config_for("random_forest").training)

    transformers = {name: columns for name, _, columns in pipeline.named_steps["preprocess"].transformers}
    assert transformers["numeric"] == default_config.contract.numeric_features
    assert transformers["categorical"] == default_config.contract.categorical_features


@pytest.mark.parametrize("estimator", ["random_forest", "gradient_boosting"])
def test_unseen_categories_and_missing_values_still_predict(estimator, data):
    config = config_for(estimator)
    model = fit(data, config.contract, config.training)
    odd = data[config.contract.feature_names].head(3).copy()
    odd.loc[odd.index[0], "Gender"] = "Unknown"
    odd.loc[odd.index[1], "Age"] = np.nan
    odd.loc[odd.index[2], "Vehicle_Age"] = None

    assert model.predict_proba(odd).shape == (3, 2)


def test_unknown_hyperparameter_is_named():
    with pytest.raises(
        ConfigError, match=r"training.hyperparameters \['n_trees'\] are not parameters of gradient_boosting"
    ):
        with_overrides(load_config(), training={"hyperparameters": {"n_trees": 10, "max_depth": 3}})


def test_hyperparameters_of_another_estimator_are_named_when_the_config_loads():
    """The default hyperparameters are gradient boosting's; switching the estimator alone does not fit them."""
    with pytest.raises(ConfigError, match=r"\['early_stopping', 'learning_rate', 'max_depth', 'min_samples_leaf'\]"):
        load_config({"training": {"estimator": "logistic_regression"}})


def test_a_bad_hyperparameter_value_fails_at_fit(data):
    config = with_overrides(load_config(), training={"hyperparameters": {"max_iter": -3}})

    with pytest.raises(ValueError, match="max_iter"):
        fit(data, config.contract, config.training)


def test_split_holdout_is_stratified_disjoint_and_seeded(data, default_config):
    training = default_config.training  # holdout_share 0.2, seed 42

    train, holdout = split_holdout(data, default_config.contract, training)
    again_train, again_holdout = split_holdout(data, default_config.contract, training)

    assert len(holdout) == 240
    assert len(train) == 960
    assert set(train.index).isdisjoint(holdout.index)
    assert set(train.index) | set(holdout.index) == set(data.index)
    overall = data["Response"].mean()
    assert holdout["Response"].mean() == pytest.approx(overall, abs=0.005)
    assert train["Response"].mean() == pytest.approx(overall, abs=0.005)
    assert holdout.index.tolist() == again_holdout.index.tolist()
    assert train.index.tolist() == again_train.index.tolist()
    other_seed = with_overrides(default_config, training={"seed": 7}).training
    assert split_holdout(data, default_config.contract, other_seed)[1].index.tolist() != holdout.index.tolist()


def test_stratification_keeps_a_rare_class_on_both_sides(data, default_config):
    rare = data.copy()
    rare["Response"] = 0
    rare.loc[rare.index[:10], "Response"] = 1  # 10 positives in 1,200 rows

    train, holdout = split_holdout(rare, default_config.contract, default_config.training)

    assert holdout["Response"].sum() == 2
    assert train["Response"].sum() == 8


def test_features_and_label(data, default_config):
    features, label = features_and_label(data, default_config.contract)

    assert list(features.columns) == default_config.contract.feature_names
    assert label.name == "Response"
    assert len(features) == len(label) == len(data)


def test_seeded_fit_is_reproducible(data):
    config = config_for("random_forest", seed=3)
    features, _ = features_and_label(data, config.contract)

    first = fit(data, config.contract, config.training).predict_proba(features)
    second = fit(data, config.contract, config.training).predict_proba(features)
    other = fit(data, config.contract, config_for("random_forest", seed=4).training).predict_proba(features)

    # the same trees; with n_jobs=-1 the forest sums their votes in thread order, so compare to 1e-12
    assert np.allclose(first, second, rtol=0, atol=1e-12)
    assert not np.allclose(first, other, rtol=0, atol=1e-12)


def test_gradient_boosting_splits_on_the_contracts_categories_natively(default_config):
    pipeline = build_pipeline(default_config.contract, config_for("gradient_boosting").training)

    transformers = {name: (step, columns) for name, step, columns in pipeline.named_steps["preprocess"].transformers}
    assert transformers["numeric"] == ("passthrough", default_config.contract.numeric_features)
    codes, columns = transformers["categorical"]
    assert columns == default_config.contract.categorical_features
    contract_categories = {f.name: list(f.categories) for f in default_config.contract.features if f.categories}
    assert codes.categories == [contract_categories[name] for name in columns]
    numeric, categorical = len(default_config.contract.numeric_features), len(columns)
    assert pipeline.named_steps["estimator"].categorical_features == [False] * numeric + [True] * categorical


def test_every_core_is_used_unless_the_hyperparameters_say_otherwise():
    forest = config_for("random_forest")
    assert build_pipeline(forest.contract, forest.training).named_steps["estimator"].n_jobs == -1

    one_core = with_overrides(forest, training={"hyperparameters": {"n_jobs": 1}})
    assert build_pipeline(one_core.contract, one_core.training).named_steps["estimator"].n_jobs == 1


def test_training_sample_caps_rows_stratified_and_seeded(data, default_config):
    capped = with_overrides(default_config, training={"max_rows": 300})

    sample = training_sample(data, capped.contract, capped.training)

    assert len(sample) == 300
    assert set(sample.index) <= set(data.index)
    assert sample["Response"].mean() == pytest.approx(data["Response"].mean(), abs=0.005)
    assert sample.index.tolist() == training_sample(data, capped.contract, capped.training).index.tolist()
    reseeded = with_overrides(capped, training={"seed": 7})
    assert sample.index.tolist() != training_sample(data, reseeded.contract, reseeded.training).index.tolist()


def test_training_sample_picks_the_rows_a_split_of_the_frame_picked(data, default_config):
    """Sampling positions instead of rows (no copy of the rows left out) keeps the rows earlier versions drew."""
    capped = with_overrides(default_config, training={"max_rows": 300})
    frame_split, _ = train_test_split(
        data, train_size=300, random_state=capped.training.seed, stratify=data["Response"]
    )

    sample = training_sample(data, capped.contract, capped.training)

    assert sample.index.tolist() == frame_split.index.tolist()


def test_training_sample_keeps_a_window_under_the_cap(data, default_config):
    assert default_config.training.max_rows > len(data)
    assert training_sample(data, default_config.contract, default_config.training) is data
    uncapped = with_overrides(default_config, training={"max_rows": None})
    assert training_sample(data, uncapped.contract, uncapped.training) is data


def test_max_rows_must_be_positive():
    with pytest.raises(ConfigError, match=r"config.training.max_rows: got 0, out of range: use a value >= 1"):
        load_config({"training": {"max_rows": 0}})


@pytest.mark.parametrize("estimator", estimators_for("binary"))
def test_the_skops_allowlist_covers_every_estimator_the_project_builds(estimator, default_config, make_frame):
    """adapters/registry/models.TRUSTED_TYPES is fixed in code (never read from an artifact): it must hold
    every non-default type a model of each estimator needs, or that model could not be loaded back."""
    import skops.io

    from include.retraining.adapters.registry import TRUSTED_TYPES

    config = with_overrides(default_config, training={"estimator": estimator, "hyperparameters": {}})
    frame = make_frame(300, seed=3)
    model = fit(frame[[*config.contract.feature_names, "Response"]], config.contract, config.training)

    assert set(skops.io.get_untrusted_types(data=skops.io.dumps(model))) <= set(TRUSTED_TYPES)


def test_recency_weights_halve_every_half_life_counted_from_the_newest_row():
    days = ["2024-01-05 00:00", "2024-01-01 00:00", "2024-01-03 00:00", "2024-01-04 12:00"]
    stamps = pd.Series(pd.to_datetime(days, utc=True))

    weights = recency_weights(stamps, half_life_days=2.0)

    assert weights == pytest.approx([1.0, 0.25, 0.5, 0.5**0.25])
    assert recency_weights(stamps, half_life_days=None) is None
    assert recency_weights(stamps.iloc[:0], half_life_days=2.0) is None


@pytest.mark.parametrize("estimator", estimators_for("binary"))
def test_a_short_half_life_makes_the_fit_follow_the_newest_rows_relation(estimator, make_frame):
    """The newest 240 of 1,200 rows (about 6 days) carry the inverted relation: with equal weights a model
    learns the old one, with a half-life of a day the new one, so the weights reach every estimator's fit."""
    rows = make_frame(1_200, seed=31).assign(Response=lambda frame: frame["Response"].astype("int64"))
    newest = rows.index[-240:]
    rows.loc[newest, "Response"] = 1 - rows.loc[newest, "Response"]
    unseen = make_frame(600, seed=32)
    config = config_for(estimator)
    equal = with_overrides(config, training={"recency_half_life_days": None})
    recent = with_overrides(config, training={"recency_half_life_days": 1.0})

    def auc_on_the_new_relation(training) -> float:
        model = fit_recent(rows, config.contract, training, "ingested_at")
        scores = model.predict_proba(unseen[config.contract.feature_names])[:, 1]
        return roc_auc_score(1 - unseen["Response"], scores)

    assert auc_on_the_new_relation(equal.training) < 0.3
    assert auc_on_the_new_relation(recent.training) > 0.7
