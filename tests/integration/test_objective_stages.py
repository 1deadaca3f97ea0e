"""Each objective through the stages, like the DAG runs them, on real scikit-learn data in MongoDB.

breast cancer (binary, string classes, positive "malignant"), digits 0-4 named "zero".."four"
(multiclass) and diabetes (regression) are loaded into the local MongoDB with a timestamp. Per dataset,
run 1 extracts, validates, trains, evaluates, registers and promotes the first champion; run 2 is a
forced retrain on the same rows: the champion is re-scored on the holdout in its metric's direction and,
being the same model, stays. So that run 2 splits the rows exactly as run 1 did, the champion is not refit
(its holdout stays new to it) and ``min_holdout_rows`` is run 1's holdout (all of it stays the holdout).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from include.retraining.adapters import registry, storage
from include.retraining.core.config import METRICS, PipelineConfig
from tests.datasets import configure, load
from tests.integration.test_pipeline_stages import Run, insert, new_run, retrain

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:invalid escape sequence:SyntaxWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning"),
]

TRAIN_METRICS = {
    "binary": {"positive_share"},
    "multiclass": {"classes_in_training"},
    "regression": {"label_mean", "label_std"},
}


@pytest.fixture(scope="module", params=["binary", "multiclass", "regression"])
def story(request, config_factory: Callable[..., PipelineConfig]) -> tuple[PipelineConfig, list[dict], Run, Run]:
    """(config, documents, run 1, run 2) for one objective."""
    dataset = load(request.param)
    base = config_factory()
    holdout_rows = math.ceil(base.training.holdout_share * len(dataset.frame))
    config = configure(base, dataset, refit=False, min_holdout_rows=holdout_rows)
    rng = np.random.default_rng(3)
    now = datetime.now(UTC)
    docs = [
        {**row, "ingested_at": now - timedelta(days=30) + timedelta(seconds=float(offset))}
        for row, offset in zip(
            dataset.frame.to_dict("records"), rng.uniform(0, 29 * 86400, len(dataset.frame)), strict=True
        )
    ]
    insert(config, docs)
    first = retrain(config, new_run())
    second = retrain(config, new_run(), force=True)
    return config, docs, first, second


def test_the_label_keeps_its_type_from_mongodb_to_the_snapshot(story):
    config, docs, first, _ = story
    label = config.contract.label

    frame = storage.read_parquet(config.storage, first.validation.snapshot.uri)

    assert first.validation.rows_quarantined == 0
    assert first.validation.snapshot.rows == len(docs)
    assert sorted(frame[label.name].tolist()) == sorted(doc[label.name] for doc in docs)
    if label.is_classification:
        assert set(frame[label.name]) == set(label.classes)  # strings, never nulls
    else:
        assert frame[label.name].dtype == np.float64


def test_the_first_model_becomes_champion_with_the_metrics_of_its_objective(story):
    config, _, first, _ = story
    objective = config.objective

    assert first.decision.reason == "no champion yet: training the first model"
    assert set(first.training.metrics) == {"rows_train", "rows_holdout", *TRAIN_METRICS[objective]}
    assert set(first.evaluation.challenger) == set(METRICS[objective])
    assert first.evaluation.primary_metric == next(iter(METRICS[objective]))
    assert first.evaluation.passed, first.evaluation.reason
    assert first.promotion.promoted
    assert first.champion.version == "1"
    logged = registry.run_metrics(config.mlflow, first.training.mlflow_run_id)
    assert {f"holdout_{name}" for name in METRICS[objective]} <= set(logged)
    assert logged["gate_passed"] == 1.0


def test_the_champion_is_rescored_in_its_metrics_direction_and_stays(story):
    config, _, first, second = story
    evaluation = second.evaluation
    primary = evaluation.primary_metric

    assert second.decision.reason == "forced by the force_retrain Param"
    assert evaluation.champion_version == "1"
    assert set(evaluation.champion) == set(METRICS[config.objective])
    assert evaluation.champion[primary] == pytest.approx(first.evaluation.challenger[primary])
    assert evaluation.improvement == pytest.approx(0.0)  # the same rows and seed: the same model
    assert evaluation.passed is False
    assert ("(lower is better)" in evaluation.reason) == (config.objective == "regression")
    assert second.registration.version == "2"
    assert second.promotion.promoted is False
    assert second.champion.version == "1"
    logged = registry.run_metrics(config.mlflow, second.training.mlflow_run_id)
    assert logged[f"champion_holdout_{primary}"] == pytest.approx(evaluation.champion[primary])
