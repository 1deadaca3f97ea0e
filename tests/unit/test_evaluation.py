"""Binary scoring and the promotion gate: floor, margin and paired-bootstrap confidence (the other
objectives: test_objectives.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from include.retraining.core.config import METRICS, GateConfig, LabelSpec
from include.retraining.core.evaluation import METRIC_FUNCTIONS, decide_promotion, predict, score, win_share

BINARY = tuple(METRICS["binary"])
# margin 0.005, confidence 0.9 (the wording these tests check; the default is 0.95); fewer rounds: ~2 ms each
GATE = GateConfig(primary_metric="roc_auc", floor=0.6, bootstrap_rounds=100, confidence=0.9)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    rng = np.random.default_rng(1)
    return (rng.random(400) < 0.3).astype(int)


@pytest.fixture(scope="module")
def strong(labels) -> np.ndarray:
    """Scores that separate the classes well (ROC-AUC around 0.95)."""
    return sigmoid(3 * labels + np.random.default_rng(2).normal(0, 1, labels.size))


@pytest.fixture(scope="module")
def weak(labels) -> np.ndarray:
    """Scores with a little signal (ROC-AUC around 0.7)."""
    return sigmoid(labels + np.random.default_rng(3).normal(0, 1.5, labels.size))


@pytest.fixture(scope="module")
def noise(labels) -> np.ndarray:
    return np.random.default_rng(4).random(labels.size)


def test_score_has_every_configured_metric():
    y = np.array([0, 0, 1, 1, 1, 0])
    scores = np.array([0.1, 0.6, 0.7, 0.9, 0.4, 0.2])

    scored = score(y, scores)

    assert set(scored) == set(BINARY)
    assert set(METRIC_FUNCTIONS) == {name for metrics in METRICS.values() for name in metrics}
    # predictions at 0.5: [0, 1, 1, 1, 0, 0] -> tp 2, fp 1, fn 1, tn 2
    assert scored["accuracy"] == pytest.approx(4 / 6)
    assert scored["precision"] == pytest.approx(2 / 3)
    assert scored["recall"] == pytest.approx(2 / 3)
    assert scored["f1"] == pytest.approx(2 / 3)
    assert scored["roc_auc"] == pytest.approx(8 / 9)  # 8 of the 9 positive/negative pairs ordered right
    # ranked by score: 0.9+, 0.7+, 0.6-, 0.4+, 0.2-, 0.1-: precision at each positive 1, 1, 3/4
    assert scored["pr_auc"] == pytest.approx((1 + 1 + 3 / 4) / 3)
    assert all(isinstance(value, float) for value in scored.values())


def test_label_metrics_without_positive_predictions_are_zero_not_an_error():
    scored = score(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4]))
    assert scored["precision"] == 0.0
    assert scored["recall"] == 0.0
    assert scored["roc_auc"] == 1.0


def test_predict_picks_the_positive_class_column():
    class Model:
        classes_ = np.array([1, 0])  # positive class first, unlike the usual order

        def predict_proba(self, features):
            return np.array([[0.9, 0.1], [0.2, 0.8]])

    positive_one = LabelSpec("y", classes=(0, 1), positive_class=1)
    positive_zero = LabelSpec("y", classes=(0, 1), positive_class=0)
    assert predict(Model(), [1, 2], positive_one).tolist() == [0.9, 0.2]
    assert predict(Model(), [1, 2], positive_zero).tolist() == [0.1, 0.8]


def test_below_the_floor_fails_even_without_champion(labels, noise):
    evaluation = decide_promotion(labels, noise, None, None, GATE)

    assert evaluation.passed is False
    assert evaluation.challenger["roc_auc"] < 0.6
    assert "is below the floor 0.6000" in evaluation.reason
    assert evaluation.champion is None
    assert evaluation.improvement is None


def test_below_the_floor_fails_before_the_champion_is_scored(labels, noise, strong):
    evaluation = decide_promotion(labels, noise, strong, "4", GATE)

    assert evaluation.passed is False
    assert evaluation.champion is None  # never compared: the floor decides
    assert evaluation.champion_version == "4"
    assert "below the floor" in evaluation.reason


def test_no_champion_passes_on_the_floor_alone(labels, weak):
    evaluation = decide_promotion(labels, weak, None, None, GATE)

    assert evaluation.passed is True
    assert evaluation.reason.startswith("no champion yet; challenger roc_auc 0.")
    assert evaluation.champion is None
    assert evaluation.confidence is None
    assert evaluation.challenger == score(labels, weak)


def test_clearly_better_challenger_passes(labels, strong, weak):
    evaluation = decide_promotion(labels, strong, weak, "7", GATE)

    assert evaluation.passed is True
    assert evaluation.champion == score(labels, weak)
    assert evaluation.improvement == pytest.approx(evaluation.challenger["roc_auc"] - evaluation.champion["roc_auc"])
    assert evaluation.improvement > 0.1
    assert evaluation.confidence == 1.0
    assert "beats champion v7" in evaluation.reason
    assert "wins 100.0% of the bootstrap resamples" in evaluation.reason


def test_worse_challenger_fails(labels, strong, weak):
    evaluation = decide_promotion(labels, weak, strong, "7", GATE)

    assert evaluation.passed is False
    assert evaluation.improvement < 0
    assert evaluation.confidence == 0.0
    assert "does not beat champion v7" in evaluation.reason


def test_equal_models_fail_the_margin(labels, weak):
    evaluation = decide_promotion(labels, weak, weak.copy(), "2", GATE)

    assert evaluation.improvement == 0.0
    assert evaluation.confidence == 0.0  # 0 < margin in every resample
    assert evaluation.passed is False
    assert "improvement +0.0000 (needs >= 0.0050)" in evaluation.reason


def test_equal_models_pass_with_a_zero_margin(labels, weak):
    gate = replace(GATE, min_improvement=0.0)

    evaluation = decide_promotion(labels, weak, weak.copy(), "2", gate)

    assert evaluation.confidence == 1.0
    assert evaluation.passed is True


def test_margin_met_but_not_confidently():
    """A challenger ahead on the holdout, but not in enough resamples of it, leaves the champion alone."""
    rng = np.random.default_rng(7)
    y = (rng.random(200) < 0.3).astype(int)
    signal = y + rng.normal(0, 1.0, 200)
    champion = sigmoid(signal + rng.normal(0, 0.8, 200))
    challenger = sigmoid(signal + rng.normal(0, 0.7, 200))

    strict = decide_promotion(y, challenger, champion, "1", GATE)
    lenient = decide_promotion(y, challenger, champion, "1", replace(GATE, confidence=0.75))

    assert strict.improvement >= GATE.min_improvement
    assert 0.75 <= strict.confidence < 0.9
    assert strict.passed is False
    assert "(needs >= 90.0%)" in strict.reason
    assert lenient.passed is True
    assert lenient.confidence == strict.confidence


def test_confidence_is_in_the_record(labels, strong, weak):
    evaluation = decide_promotion(labels, strong, weak, "1", GATE)
    assert evaluation.confidence == win_share(labels, strong, weak, GATE)


def test_win_share_is_deterministic_and_monotonic_in_the_margin(labels, strong, weak):
    noisy = sigmoid(np.log(strong / (1 - strong)) + np.random.default_rng(9).normal(0, 2, labels.size))
    margins = (0.0, 0.05, 1.0)
    shares = [win_share(labels, noisy, weak, replace(GATE, min_improvement=m)) for m in margins]

    assert shares[0] > shares[1] > shares[2]
    assert 0.0 < shares[1] < 1.0  # the noisy challenger wins some resamples by 0.05, not all
    assert shares[-1] == 0.0
    assert win_share(labels, noisy, weak, replace(GATE, min_improvement=0.05)) == shares[1]


def test_win_share_with_one_class_is_zero():
    y = np.zeros(50, dtype=int)
    assert win_share(y, np.ones(50), np.zeros(50), GATE) == 0.0


def test_win_share_skips_one_class_resamples():
    y = np.zeros(30, dtype=int)
    y[0] = 1  # most resamples miss the only positive and are skipped, not counted as losses
    challenger = np.where(y == 1, 0.9, 0.1)
    champion = np.full(30, 0.5)

    assert win_share(y, challenger, champion, GATE) == 1.0


def test_other_primary_metric(labels, strong, weak):
    gate = replace(GATE, primary_metric="accuracy", floor=0.5)

    evaluation = decide_promotion(labels, strong, weak, "1", gate)

    assert evaluation.primary_metric == "accuracy"
    assert evaluation.improvement == pytest.approx(evaluation.challenger["accuracy"] - evaluation.champion["accuracy"])
    assert "challenger accuracy" in evaluation.reason


def _scores_pair(seed: int, rows: int, ties: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < rng.uniform(0.05, 0.5)).astype(int)
    signal = y + rng.normal(0, 1.0, rows)
    champion, challenger = (sigmoid(signal + rng.normal(0, s, rows)) for s in rng.uniform(0.3, 1.5, 2))
    if ties:  # forests and coarse models score many rows alike
        champion, challenger = np.round(champion, 1), np.round(challenger, 2)
    return y, challenger, champion


@pytest.mark.parametrize(("metric", "seeds"), [("roc_auc", 30), *((m, 6) for m in BINARY if m != "roc_auc")])
def test_vectorised_win_share_decides_like_the_loop_over_many_seeds(metric, seeds):
    """The O(n)-per-round bootstrap draws the same resamples and reaches the same share as the loop that
    materialises every resample and calls scikit-learn on it (today's implementation, kept in bench/)."""
    from bench.baselines import loop_win_share

    for seed in range(seeds):
        y, challenger, champion = _scores_pair(seed, rows=int(60 + 37 * seed), ties=seed % 2 == 0)
        for margin in (0.0, 0.005):
            gate = replace(GATE, primary_metric=metric, min_improvement=margin, bootstrap_rounds=20)
            expected = loop_win_share(y, challenger, champion, gate)
            assert win_share(y, challenger, champion, gate) == expected, (seed, margin)
