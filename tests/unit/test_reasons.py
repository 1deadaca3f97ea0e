"""Each decision of a run reads as one plain sentence with its reason and figures (log, run note, MLflow)."""

from __future__ import annotations

from dataclasses import replace

from include.retraining.airflow.dag_defaults import failure_note
from include.retraining.core.decision import decide_retrain
from include.retraining.core.reasons import (
    NOTE_LIMIT,
    decision_sentence,
    gate_sentence,
    promotion_outcome,
    run_summary,
    version_description,
)
from include.retraining.core.records import Decision, Evaluation, Promotion, Registration, RunInfo
from tests.unit.test_records import DRIFT

RUN = RunInfo(dag_id="retrain_vehicle_insurance", run_id="manual__7", run_end="2024-05-01T00:00:00+00:00")
PASSED = Evaluation(
    primary_metric="roc_auc",
    challenger={"roc_auc": 0.6995},
    champion={"roc_auc": 0.6458},
    champion_version="1",
    improvement=0.0537,
    confidence=1.0,
    passed=True,
    reason="challenger roc_auc 0.6995 beats champion v1 0.6458: improvement +0.0537 (needs >= 0.0050), "
    "wins 100.0% of the bootstrap resamples (needs >= 90.0%)",
)
REFUSED = replace(
    PASSED,
    champion_version="3",
    passed=False,
    reason="challenger roc_auc 0.7000 does not beat champion v3 0.7100: improvement -0.0100 (needs >= 0.0050)",
)
VERSION_2 = Registration(model_name="cross_sell", version="2", model_uri="models:/cross_sell/2", tags={})


def test_the_retrain_decision_names_the_drift_figures():
    sentence = decision_sentence(decide_retrain(RUN, DRIFT))

    assert sentence.startswith("Retraining because data drift: 2 of ")
    assert "(share 0.40 >= 0.3)" in sentence
    assert sentence.endswith(".")


def test_the_skip_sentence_says_why_with_the_share_and_the_champion():
    decision = Decision(retrain=False, reason="no data drift (share 0.10 < 0.3) and champion v3 is in place")

    assert decision_sentence(decision) == (
        "Not retraining: no data drift (share 0.10 < 0.3) and champion v3 is in place."
    )


def test_the_gate_sentences_carry_the_metric_margin_and_bootstrap_share():
    assert gate_sentence(PASSED).startswith("The gate passed: challenger roc_auc 0.6995 beats champion v1 0.6458")
    assert "+0.0537 (needs >= 0.0050)" in gate_sentence(PASSED)
    assert gate_sentence(REFUSED).startswith("The gate refused the challenger: challenger roc_auc 0.7000 does not")


def test_the_run_note_tells_the_outcome_first_then_why():
    decision = Decision(retrain=True, reason="no champion yet: training the first model")
    promotion = Promotion(promoted=True, champion_version="2", previous_champion="1", reason="version 2 promoted")

    note = run_summary(decision, PASSED, VERSION_2, promotion)

    assert note.startswith(
        "Version 2 of cross_sell is the new champion (was v1). "
        "Retrained because no champion yet: training the first model. The gate passed: "
    )


def test_the_run_note_of_a_refused_challenger_and_of_the_skip_path():
    decision = Decision(retrain=True, reason="forced by the force_retrain Param")
    kept = Promotion(promoted=False, champion_version="3", previous_champion="3", reason="champion v3 unchanged")

    assert "Version 2 of cross_sell stays challenger; the champion is still v3." in run_summary(
        decision, REFUSED, VERSION_2, kept
    )
    skipped = Decision(retrain=False, reason="no data drift (share 0.00 < 0.3) and champion v2 is in place")
    assert run_summary(skipped) == decision_sentence(skipped)


def test_the_note_fits_in_what_airflow_keeps():
    decision = Decision(retrain=True, reason="data drift: " + ", ".join(f"column_{i}" for i in range(400)))

    assert len(run_summary(decision)) <= NOTE_LIMIT
    assert run_summary(decision).endswith("…")


def test_the_model_version_description_is_one_line_naming_run_reason_and_gate():
    decision = Decision(retrain=True, reason="data drift: 2 of 3 columns drifted (share 0.67 >= 0.3): Age, Vintage")

    description = version_description(RUN, decision, PASSED)

    assert "\n" not in description
    assert description.startswith(
        "retrain_vehicle_insurance run manual__7: retrained because data drift: 2 of 3 columns"
    )
    assert "; gate passed: challenger roc_auc 0.6995 beats champion v1" in description
    assert promotion_outcome(Promotion(True, "2", "1", "")) == "Promoted to champion."
    assert promotion_outcome(Promotion(False, "1", "1", "")) == "Not promoted: the champion is still v1."


def test_the_failure_note_puts_the_whole_error_on_one_line():
    error = ValueError("the data cannot be trained on:\n  - 28 valid rows of 28, fewer than contract.min_rows (500)")

    note = failure_note("validate", 1, {"exception": error})

    assert note == (
        "Failed at validate (try 1): the data cannot be trained on: - 28 valid rows of 28, "
        "fewer than contract.min_rows (500)"
    )
