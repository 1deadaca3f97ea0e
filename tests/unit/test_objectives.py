"""Binary, multiclass and regression: config checks, label validation, estimators, metrics and the
direction-aware gate, on real scikit-learn datasets where data matters (tests/datasets.py)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from include.retraining.core import windows
from include.retraining.core.config import (
    METRICS,
    ConfigError,
    GateConfig,
    LabelSpec,
    TrainingConfig,
    estimator_class,
    estimators_for,
    load_config,
    with_overrides,
)
from include.retraining.core.contract import DataContractError, labeled_rows, validate_frame
from include.retraining.core.evaluation import (
    METRIC_FUNCTIONS,
    decide_promotion,
    metric_value,
    predict,
    score,
    targets,
    win_share,
)
from include.retraining.core.training import features_and_label, fit, label_metrics, split_holdout
from tests.datasets import DIGIT_NAMES, configure, load

OBJECTIVES = ("binary", "multiclass", "regression")
REGRESSION_LABEL = {"name": "y", "objective": "regression", "classes": [], "positive_class": None}


@pytest.fixture(scope="module", params=OBJECTIVES)
def dataset(request):
    return load(request.param)


@pytest.fixture(scope="module")
def fitted(dataset):
    """(config, holdout, model) for the dataset's objective, trained like the train stage does."""
    config = configure(load_config(), dataset)
    train, holdout = split_holdout(dataset.frame, config.contract, config.training)
    return config, holdout, fit(train, config.contract, config.training)


# --- config -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ({"classes": [0, 1, 2]}, "contract.label.classes has 3 classes [0, 1, 2]: objective binary needs exactly two"),
        ({"classes": [0, "yes"], "positive_class": "yes"}, "contract.label.classes [0, 'yes'] mixes ['int', 'str']"),
        ({"classes": [0.5, 1.5], "positive_class": 1.5}, "holds ['float']: classes are ints, strings or bools"),
        ({"classes": ["a", "a"], "positive_class": "a"}, "contract.label.classes ['a', 'a'] repeats a class"),
        ({"classes": [0, 1], "positive_class": 2}, "contract.label.positive_class 2 is not one of contract.label."),
        ({"classes": [False, True], "positive_class": 1}, "contract.label.positive_class 1 is not one of"),
        ({"objective": "multiclass", "classes": [0, 1, 2]}, "contract.label.positive_class is for objective binary"),
        ({"objective": "multiclass", "classes": ["a"], "positive_class": None}, "needs at least two classes"),
        ({"min": 0}, "contract.label.min/max bound a regression target: remove them for objective binary"),
        (REGRESSION_LABEL | {"classes": [0, 1]}, "contract.label.classes is for objective binary or multiclass"),
        (REGRESSION_LABEL | {"positive_class": 1}, "contract.label.positive_class is for objective binary only"),
        (REGRESSION_LABEL | {"min": 5, "max": 1}, "contract.label.min 5 is above contract.label.max 1: swap them"),
        ({"objective": "ordinal"}, "config.contract.label.objective: got 'ordinal', not one of"),
    ],
)
def test_label_errors_name_the_key_and_the_fix(label, expected):
    with pytest.raises(ConfigError) as raised:
        load_config({"contract": {"label": label}, "gate": {"primary_metric": None}})

    assert expected in str(raised.value)


def test_positive_class_defaults_to_the_last_class():
    config = load_config({"contract": {"label": {"classes": ["stay", "churn"], "positive_class": None}}})

    assert config.contract.label.positive_class == "churn"
    assert config.contract.label.kind == "str"


@pytest.mark.parametrize(
    ("objective", "metric"),
    [("binary", "rmse"), ("multiclass", "roc_auc"), ("regression", "log_loss")],
)
def test_a_primary_metric_of_another_objective_is_refused(objective, metric):
    dataset = load(objective)
    base = configure(load_config(), dataset)

    with pytest.raises(ConfigError) as raised:
        with_overrides(base, gate={"primary_metric": metric})

    message = str(raised.value)
    assert f"gate.primary_metric {metric!r} is not a metric of objective {objective}: use one of" in message
    assert str(list(METRICS[objective])) in message


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_primary_metric_defaults_per_objective(objective):
    config = configure(load_config(), load(objective))

    assert config.gate.primary_metric == next(iter(METRICS[objective]))
    assert config.objective == objective


@pytest.mark.parametrize(
    ("objective", "training", "expected"),
    [
        ("regression", {"estimator": "logistic_regression", "hyperparameters": {}}, "has no regression variant"),
        ("binary", {"estimator": "ridge", "hyperparameters": {}}, "has no classification variant"),
        (
            "regression",
            {"estimator": "random_forest", "hyperparameters": {"class_weight": "balanced"}},
            "training.hyperparameters ['class_weight'] are not parameters of random_forest for objective regression",
        ),
    ],
)
def test_estimators_and_hyperparameters_are_checked_per_objective(objective, training, expected):
    with pytest.raises(ConfigError, match=r"training\.") as raised:
        configure(load_config(), load(objective), **training)

    assert expected in str(raised.value)


def test_estimator_names_map_to_a_classifier_or_a_regressor():
    assert estimators_for("regression") == ["random_forest", "gradient_boosting", "ridge"]
    assert estimators_for("multiclass") == ["random_forest", "gradient_boosting", "logistic_regression"]
    assert estimator_class("gradient_boosting", "regression").__name__ == "HistGradientBoostingRegressor"
    assert estimator_class("gradient_boosting", "multiclass").__name__ == "HistGradientBoostingClassifier"
    assert estimator_class("random_forest", "regression").__name__ == "RandomForestRegressor"


# --- label validation ---------------------------------------------------------------------------------


def _contract(label: LabelSpec):
    config = load_config({"contract": {"min_rows": 2}})
    return replace(config.contract, label=label)


def _frame(labels: list) -> pd.DataFrame:
    column = pd.Series(labels, dtype="float64" if all(isinstance(v, float) for v in labels) else object)
    contract = load_config().contract  # the default features, filled with valid values
    values = {f.name: (f.categories[0] if f.categories else f.min or 0.0) for f in contract.features}
    values["Vintage"] = np.arange(len(labels), dtype=float)  # rows differ: none is a duplicate of another
    stamps = pd.date_range("2024-01-01", periods=len(labels), freq="h", tz="UTC")
    return pd.DataFrame({"_id": [f"doc-{i}" for i in range(len(labels))], **values, "y": column, "ingested_at": stamps})


def test_string_classes_keep_their_type_and_unknown_values_are_counted_and_listed():
    contract = replace(_contract(LabelSpec("y", "multiclass", ("sun", "rain", "fog"))), max_quarantine_share=0.5)
    labels = ["sun", "rain", "fog", "sun", "hail", "hail", "snow", None, "rain", "fog", "sun", "rain"]

    outcome = validate_frame(_frame(labels), contract, "_id")

    assert outcome.valid["y"].tolist() == [v for v in labels if v in ("sun", "rain", "fog", None)]
    assert labeled_rows(outcome.valid, contract)["y"].tolist() == [v for v in labels if v in ("sun", "rain", "fog")]
    unknown = next(p for p in outcome.problems if "not one of" in p)
    assert unknown.startswith("y: 3 of 12 rows (25.0%) label not one of ['sun', 'rain', 'fog'], e.g. _id doc-4")
    assert "2 unknown value(s): 'hail' (2), 'snow' (1); add them to contract.label.classes" in unknown
    # a missing label has not arrived yet: the row stays valid for the drift check, and is counted
    assert outcome.unlabeled == 1
    assert "y: 1 of 9 valid rows have no label yet: drift only" in outcome.problems
    assert set(outcome.quarantined["quarantine_reason"]) == {"y: label not one of ['sun', 'rain', 'fog']"}


def test_too_many_unknown_classes_stop_the_run_naming_them():
    contract = _contract(LabelSpec("y", "binary", ("no", "yes")))

    with pytest.raises(DataContractError) as raised:
        validate_frame(_frame(["no", "yes", "maybe", "Yes", "no", "yes"]), contract, "_id")

    assert "y: 2 of 6 rows (33.3%) label not one of ['no', 'yes']" in str(raised.value)
    assert "'maybe' (1), 'Yes' (1)" in str(raised.value)


def test_bool_and_int_classes_end_up_typed():
    bools = validate_frame(_frame([True, False, True]), _contract(LabelSpec("y", "binary", (False, True))), "_id")
    ints = validate_frame(_frame([0.0, 2.0, 1.0, 2.0]), _contract(LabelSpec("y", "multiclass", (0, 1, 2))), "_id")

    bool_labels = labeled_rows(bools.valid, _contract(LabelSpec("y", "binary", (False, True))))["y"]
    int_labels = labeled_rows(ints.valid, _contract(LabelSpec("y", "multiclass", (0, 1, 2))))["y"]
    assert bool_labels.dtype == bool
    assert bool_labels.tolist() == [True, False, True]
    assert int_labels.dtype == np.int64
    assert int_labels.tolist() == [0, 2, 1, 2]


def test_regression_target_is_checked_against_its_range():
    label = LabelSpec("y", "regression", min=0.0, max=100.0)
    contract = replace(_contract(label), max_quarantine_share=0.5)
    frame = _frame([1.5, 99.0, -1.0, 150.0, float("nan"), float("inf"), 42.0, 7.25])

    outcome = validate_frame(frame, contract, "_id")

    assert labeled_rows(outcome.valid, contract)["y"].tolist() == [1.5, 99.0, 42.0, 7.25]
    assert labeled_rows(outcome.valid, contract)["y"].dtype == np.float64
    assert outcome.unlabeled == 1  # doc-4's label has not arrived: valid for the drift check only
    reasons = outcome.quarantined.set_index("_id")["quarantine_reason"].to_dict()
    assert reasons == {
        "doc-2": "y: label below contract.label.min 0",
        "doc-3": "y: label above contract.label.max 100",
        "doc-5": "y: label not a finite number (inf); y: label above contract.label.max 100",
    }


def test_a_constant_regression_target_cannot_be_trained_on():
    contract = _contract(LabelSpec("y", "regression"))
    valid = validate_frame(_frame([3.0] * 8), contract, "_id").valid
    training = TrainingConfig(min_holdout_rows=1)

    plan = windows.plan(valid, contract, training, "_id", "ingested_at", champion_training_end=None)

    assert plan.problem == "the training rows hold a single value of y: nothing to learn; wait for more data"


# --- metrics ------------------------------------------------------------------------------------------


def test_multiclass_metrics_on_known_values():
    y = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.array(
        [[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.1, 0.8, 0.1], [0.2, 0.45, 0.35], [0.1, 0.1, 0.8], [0.1, 0.2, 0.7]]
    )

    scored = score(y, probabilities, "multiclass")

    assert set(scored) == set(METRICS["multiclass"])
    # argmax: [0, 1, 1, 1, 2, 2] -> recalls 1/2, 1, 1; F1 per class 2/3, 4/5, 1
    assert scored["balanced_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert scored["macro_f1"] == pytest.approx((2 / 3 + 4 / 5 + 1) / 3)
    assert scored["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.4, 0.8, 0.45, 0.8, 0.7])))
    # one vs rest: classes 0 and 2 rank their rows above all others; for class 1, row 3 (0.45) is below
    # row 1 (0.5, a class 0 row): 7 of its 2 x 4 pairs in order
    assert scored["roc_auc_ovr"] == pytest.approx(np.mean([1.0, 7 / 8, 1.0]))


def test_regression_metrics_on_known_values():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = np.array([1.0, 2.0, 3.0, 6.0])

    scored = score(y, predicted, "regression")

    assert scored == {"rmse": pytest.approx(1.0), "mae": pytest.approx(0.5), "r2": pytest.approx(1 - 4 / 5)}


def test_an_undefined_metric_is_left_out_not_nan():
    one_class = np.zeros(20, dtype=int)

    scored = score(one_class, np.linspace(0, 1, 20), "binary")

    assert "roc_auc" not in scored
    assert "pr_auc" not in scored
    assert scored["accuracy"] == pytest.approx(10 / 20)
    assert math.isnan(metric_value("r2", np.array([1.0]), np.array([2.0])))


def test_an_undefined_primary_metric_refuses_with_a_reason_and_no_nan():
    gate = GateConfig(primary_metric="roc_auc", floor=0.6, bootstrap_rounds=20)

    evaluation = decide_promotion(np.zeros(30, dtype=int), np.linspace(0, 1, 30), None, None, gate)

    assert evaluation.passed is False
    assert evaluation.reason.startswith("challenger roc_auc is undefined on this holdout (30 rows; e.g. a single class")
    assert "training.holdout_share" in evaluation.reason
    json.dumps(evaluation.to_dict(), allow_nan=False)  # raises on a NaN anywhere in the record


def test_every_metric_has_a_function_and_a_direction():
    names = [name for metrics in METRICS.values() for name in metrics]
    assert len(names) == len(set(names)) == len(METRIC_FUNCTIONS)
    assert {name for metrics in METRICS.values() for name, d in metrics.items() if d == "lower"} == {
        "log_loss",
        "rmse",
        "mae",
    }


# --- the gate, in the metric's direction -------------------------------------------------------------


@pytest.fixture(scope="module")
def regression_case():
    rng = np.random.default_rng(5)
    y = rng.normal(100, 30, 300)
    good = y + rng.normal(0, 10, 300)  # RMSE about 10
    poor = y + rng.normal(0, 25, 300)  # RMSE about 25
    return y, good, poor


REGRESSION_GATE = GateConfig(primary_metric="rmse", min_improvement=1.0, floor=40.0, bootstrap_rounds=100)


def test_a_lower_rmse_wins(regression_case):
    y, good, poor = regression_case

    evaluation = decide_promotion(y, good, poor, "3", REGRESSION_GATE, "regression")

    assert evaluation.challenger["rmse"] < evaluation.champion["rmse"]
    assert evaluation.improvement == pytest.approx(evaluation.champion["rmse"] - evaluation.challenger["rmse"])
    assert evaluation.improvement > 10
    assert evaluation.confidence == 1.0
    assert evaluation.passed is True
    assert "beats champion v3" in evaluation.reason
    assert "(lower is better): improvement +" in evaluation.reason


def test_a_higher_rmse_loses(regression_case):
    y, good, poor = regression_case

    evaluation = decide_promotion(y, poor, good, "3", REGRESSION_GATE, "regression")

    assert evaluation.improvement < -10
    assert evaluation.confidence == 0.0
    assert evaluation.passed is False
    assert "does not beat champion v3" in evaluation.reason


def test_the_rmse_floor_is_a_ceiling(regression_case):
    y, good, _ = regression_case

    strict = decide_promotion(y, good, None, None, replace(REGRESSION_GATE, floor=5.0), "regression")
    loose = decide_promotion(y, good, None, None, REGRESSION_GATE, "regression")

    assert strict.passed is False
    assert strict.reason.startswith("challenger rmse ")
    assert "is above the ceiling 5.0000 (gate.floor) (lower is better)" in strict.reason
    assert loose.passed is True
    assert loose.reason.endswith("clears the floor 40.0000 (lower is better)")


def test_a_higher_r2_wins(regression_case):
    y, good, poor = regression_case
    gate = replace(REGRESSION_GATE, primary_metric="r2", min_improvement=0.05, floor=0.5)

    better = decide_promotion(y, good, poor, "1", gate, "regression")
    worse = decide_promotion(y, poor, good, "1", gate, "regression")

    assert better.passed
    assert not worse.passed
    assert better.improvement == pytest.approx(better.challenger["r2"] - better.champion["r2"])
    assert "lower is better" not in better.reason


@pytest.fixture(scope="module")
def multiclass_case():
    rng = np.random.default_rng(8)
    y = rng.integers(0, 4, 400)

    def model(noise: float) -> np.ndarray:
        logits = 3 * np.eye(4)[y] + rng.normal(0, noise, (400, 4))
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    return y, model(1.0), model(3.0)


@pytest.mark.parametrize("metric", METRICS["multiclass"])
def test_multiclass_gate_in_each_metrics_direction(multiclass_case, metric):
    y, sharp, blurred = multiclass_case
    gate = GateConfig(primary_metric=metric, min_improvement=0.01, bootstrap_rounds=50)

    better = decide_promotion(y, sharp, blurred, "2", gate, "multiclass")
    worse = decide_promotion(y, blurred, sharp, "2", gate, "multiclass")

    assert (better.passed, better.confidence) == (True, 1.0)
    assert better.improvement > 0.05
    assert (worse.passed, worse.confidence) == (False, 0.0)
    assert worse.improvement < 0
    assert set(better.challenger) == set(METRICS["multiclass"])
    assert ("(lower is better)" in better.reason) == (metric == "log_loss")


def _loop_win_share(y, challenger, champion, gate) -> float:
    """The bootstrap written out: materialise each resample, call the metric, skip undefined rounds."""
    sign = -1 if gate.primary_metric in ("rmse", "mae", "log_loss") else 1
    rng = np.random.default_rng(0)
    wins = rounds = 0
    for _ in range(gate.bootstrap_rounds):
        rows = rng.integers(0, len(y), len(y))
        values = [metric_value(gate.primary_metric, y[rows], p[rows]) for p in (challenger, champion)]
        if any(math.isnan(v) for v in values) or (gate.primary_metric == "pr_auc" and len(set(y[rows])) < 2):
            continue
        rounds += 1
        wins += sign * (values[0] - values[1]) >= gate.min_improvement
    return wins / rounds if rounds else 0.0


@pytest.mark.parametrize("metric", [*METRICS["multiclass"], *METRICS["regression"], "pr_auc"])
def test_sample_weighted_bootstrap_decides_like_the_materialised_loop(metric):
    """Counts as ``sample_weight`` give the same share as metrics over the repeated rows."""
    rng = np.random.default_rng(11)
    for rows in (40, 150):
        if metric in METRICS["regression"]:
            y = rng.normal(0, 1, rows)
            challenger, champion = y + rng.normal(0, 0.5, rows), y + rng.normal(0, 0.6, rows)
        elif metric == "pr_auc":
            y = (rng.random(rows) < 0.3).astype(int)
            challenger, champion = y + rng.normal(0, 0.8, rows), y + rng.normal(0, 0.9, rows)
        else:
            y = rng.integers(0, 3, rows)
            challenger, champion = (rng.dirichlet(np.ones(3), rows) * 0.5 + np.eye(3)[y] * 0.5 * s for s in (0.6, 0.5))
            challenger, champion = (p / p.sum(axis=1, keepdims=True) for p in (challenger, champion))
        for margin in (0.0, 0.01):
            gate = GateConfig(primary_metric=metric, min_improvement=margin, bootstrap_rounds=40)
            assert win_share(y, challenger, champion, gate) == _loop_win_share(y, challenger, champion, gate)


# --- real data, end to end in core --------------------------------------------------------------------


def test_each_objective_trains_and_scores_on_real_data(fitted):
    config, holdout, model = fitted
    label = config.contract.label
    features, y = features_and_label(holdout, config.contract)

    evaluation = decide_promotion(
        targets(label, y), predict(model, features, label), None, None, config.gate, label.objective
    )

    assert set(evaluation.challenger) == set(METRICS[label.objective])
    assert evaluation.passed, evaluation.reason
    expected = {"binary": ("roc_auc", 0.97), "multiclass": ("macro_f1", 0.9), "regression": ("r2", 0.2)}
    name, least = expected[label.objective]
    assert evaluation.challenger[name] > least


def test_the_holdout_is_stratified_for_classes_only(dataset):
    config = configure(load_config(), dataset)
    _, holdout = split_holdout(dataset.frame, config.contract, config.training)
    column = holdout[dataset.label.name]

    if dataset.objective == "regression":
        assert column.dtype == np.float64  # a continuous target cannot be stratified: a random split
    else:
        shares = dataset.frame[dataset.label.name].value_counts(normalize=True)
        assert (column.value_counts(normalize=True) - shares).abs().max() < 0.01


def test_targets_and_predictions_follow_the_declared_class_order(fitted):
    config, holdout, model = fitted
    label = config.contract.label
    features, y = features_and_label(holdout, config.contract)
    predictions = predict(model, features, label)

    if label.objective == "binary":
        assert targets(label, y).tolist() == (y == "malignant").astype(int).tolist()
        assert (
            predictions.tolist() == model.predict_proba(features)[:, list(model.classes_).index("malignant")].tolist()
        )
    elif label.objective == "multiclass":
        assert [DIGIT_NAMES[code] for code in targets(label, y)] == y.tolist()
        assert predictions.shape == (len(holdout), 5)
        assert [DIGIT_NAMES[i] for i in predictions.argmax(axis=1)] == model.predict(features).tolist()
    else:
        assert targets(label, y).tolist() == y.tolist()
        assert predictions.tolist() == model.predict(features).tolist()


def test_a_class_the_model_never_saw_gets_probability_zero():
    class TwoOfThree:
        classes_ = np.array(["rain", "sun"])

        def predict_proba(self, features):
            return np.array([[0.3, 0.7]])

    label = LabelSpec("y", "multiclass", ("sun", "fog", "rain"))

    assert predict(TwoOfThree(), [0], label).tolist() == [[0.7, 0.0, 0.3]]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_label_metrics_per_objective(objective):
    dataset = load(objective)
    values = dataset.frame[dataset.label.name]

    metrics = label_metrics(values, dataset.label)

    if objective == "binary":
        assert metrics == {"positive_share": pytest.approx(212 / 569)}  # 212 malignant of 569
    elif objective == "multiclass":
        assert metrics == {"classes_in_training": 5.0}
    else:
        assert metrics == {"label_mean": pytest.approx(values.mean()), "label_std": pytest.approx(values.std(ddof=0))}


@pytest.mark.parametrize("estimator", estimators_for("regression"))
def test_each_regressor_fits_and_loads_back_through_the_skops_allowlist(estimator):
    import skops.io

    from include.retraining.adapters.registry import TRUSTED_TYPES

    dataset = load("regression")
    config = configure(load_config(), dataset, estimator=estimator, hyperparameters={})
    model = fit(dataset.frame, config.contract, config.training)

    assert type(model.named_steps["estimator"]) is estimator_class(estimator, "regression")
    assert set(skops.io.get_untrusted_types(data=skops.io.dumps(model))) <= set(TRUSTED_TYPES)
    assert model.score(dataset.frame[config.contract.feature_names], dataset.frame["progression"]) > 0.3


def test_one_vs_rest_roc_auc_through_the_ranked_path_decides_like_scikit_learn_over_many_seeds():
    """The per-class O(n) path (tied scores included) reaches the same shares as roc_auc_score(ovr)."""
    for seed in range(8):
        rng = np.random.default_rng(100 + seed)
        rows, classes = int(50 + 23 * seed), 3 + seed % 3
        y = rng.integers(0, classes, rows)
        challenger, champion = (
            rng.dirichlet(np.ones(classes), rows) + np.eye(classes)[y] * s for s in rng.uniform(0.2, 1.0, 2)
        )
        if seed % 2 == 0:  # coarse models score many rows alike
            challenger, champion = np.round(challenger, 1) + 1e-3, np.round(champion, 1) + 1e-3
        challenger, champion = (p / p.sum(axis=1, keepdims=True) for p in (challenger, champion))
        for margin in (0.0, 0.01):
            gate = GateConfig(primary_metric="roc_auc_ovr", min_improvement=margin, bootstrap_rounds=20)
            assert win_share(y, challenger, champion, gate) == _loop_win_share(y, challenger, champion, gate), seed
