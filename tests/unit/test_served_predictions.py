"""Served predictions: their documents, the decisions they carry, and performance drift read from them."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from include.retraining.adapters import mongo_setup
from include.retraining.core.config import ContractConfig, FeatureSpec, LabelSpec, PerformanceConfig, load_config
from include.retraining.core.performance import assess_champion, champion_predictions
from include.retraining.core.scoring import decisions, prediction_documents, prediction_id, served_scores

BINARY = LabelSpec("Response", "binary", (0, 1))
MULTICLASS = LabelSpec("grade", "multiclass", ("low", "mid", "high"))
REGRESSION = LabelSpec("price", "regression")
AT = datetime(2026, 12, 7, tzinfo=UTC)


def test_a_prediction_document_names_the_document_the_model_and_its_version_once():
    docs = prediction_documents(["a", "b"], np.array([0.2, 0.7]), BINARY, "cars", "3", AT)

    assert docs[0] == {
        "_id": "cars|v3|a",
        "model_name": "cars",
        "model_version": "3",
        "document_id": "a",
        "prediction": 0,
        "score": 0.2,
        "scored_at": AT,
    }
    assert [doc["prediction"] for doc in docs] == [0, 1]
    assert prediction_id("cars", "4", "a") != docs[0]["_id"]  # another version predicts anew


def test_the_decision_is_the_class_at_half_the_most_probable_class_or_the_value():
    probabilities = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])

    assert decisions(np.array([0.5, 0.49]), BINARY) == [1, 0]
    assert decisions(np.array([0.9]), LabelSpec("yes", "binary", ("no", "yes"), positive_class="no")) == ["no"]
    assert decisions(probabilities, MULTICLASS) == ["mid", "low"]
    assert decisions(np.array([12.5]), REGRESSION) == [12.5]
    doc = prediction_documents(["x"], probabilities[:1], MULTICLASS, "m", "1", AT)[0]
    assert doc["score"] == [0.1, 0.7, 0.2]


def test_served_scores_are_read_back_in_the_shape_predict_gives():
    served = {"a": [0.1, 0.7, 0.2], "c": [0.3, 0.3, 0.4]}

    values, found = served_scores(pd.Series(["a", "b", "c"]), served, MULTICLASS)

    assert found.tolist() == [True, False, True]
    assert values.shape == (2, 3)
    assert values[1].tolist() == [0.3, 0.3, 0.4]


class Model:
    """Predicts 0.9 for every row; counts how often it is asked."""

    classes_ = np.array([0, 1])

    def __init__(self):
        self.rows_scored = 0

    def predict_proba(self, features):
        self.rows_scored += len(features)
        return np.tile([0.1, 0.9], (len(features), 1))


CONTRACT = ContractConfig(features=(FeatureSpec("Age", "numeric"),), label=BINARY)


def labeled(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"_id": [f"d{i}" for i in range(rows)], "Age": 30.0, "Response": [i % 2 for i in range(rows)]})


def test_the_champion_is_judged_on_what_it_served_and_rescored_only_where_it_served_nothing():
    frame, model = labeled(6), Model()
    served = {"d0": 0.0, "d1": 1.0, "d2": 0.0}

    predictions, from_served = champion_predictions(lambda: model, frame, CONTRACT, served, "_id")

    assert predictions.tolist() == [0.0, 1.0, 0.0, 0.9, 0.9, 0.9]
    assert from_served == 3
    assert model.rows_scored == 3


def test_a_fully_served_window_never_loads_the_champion():
    def load():
        raise AssertionError("the champion was loaded although every row was served")

    predictions, from_served = champion_predictions(load, labeled(2), CONTRACT, {"d0": 0.3, "d1": 0.8}, "_id")

    assert (predictions.tolist(), from_served) == ([0.3, 0.8], 2)


def test_performance_drift_reads_the_served_scores_not_a_rescoring():
    """Served scores that ranked every row perfectly: the verdict reports a perfect ROC-AUC, which re-scoring
    with the constant model (0.5) could never give."""
    frame = labeled(400)
    served = {row["_id"]: float(row["Response"]) for _, row in frame.iterrows()}
    settings = PerformanceConfig(min_labels=200)

    verdict = assess_champion(Model, frame, CONTRACT, 0.9, "roc_auc", settings, served, "_id")
    rescored = assess_champion(Model, frame, CONTRACT, 0.9, "roc_auc", settings)

    assert verdict.current_value == pytest.approx(1.0)
    assert verdict.served_rows == 400
    assert verdict.reason.endswith("(400 served predictions, 0 re-scored)")
    assert rescored.current_value == pytest.approx(0.5)
    assert rescored.served_rows == 0


def test_the_pipeline_role_may_add_predictions_but_never_change_them():
    config = load_config()
    grants = {
        (grant["resource"]["db"], grant["resource"]["collection"]): grant["actions"]
        for grant in mongo_setup.privileges(config)
    }

    assert grants[(config.monitoring_database, "predictions")] == ["find", "insert"]
