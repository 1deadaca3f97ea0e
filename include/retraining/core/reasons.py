"""What a person reads: each decision of a run as one plain sentence with its reason and figures.

The same sentences go to the task logs, the Airflow run's note (the UI's run list) and the model
version's description in MLflow, so every place a person looks says the same thing.
"""

from __future__ import annotations

from include.retraining.core.records import Decision, Evaluation, Promotion, Registration, RunInfo

NOTE_LIMIT = 1000  # characters Airflow keeps in a dag-run note


def decision_sentence(decision: Decision) -> str:
    """``decide``: retrain or skip, and why."""
    if decision.retrain:
        return f"Retraining because {decision.reason}."
    return f"Not retraining: {decision.reason}."


def gate_sentence(evaluation: Evaluation) -> str:
    """``evaluate``: the promotion gate's verdict with the metric, the margin and the bootstrap share."""
    verdict = "passed" if evaluation.passed else "refused the challenger"
    return f"The gate {verdict}: {evaluation.reason}."


def promotion_sentence(registration: Registration, promotion: Promotion) -> str:
    """``promote``: what happened to the champion alias."""
    version = f"Version {registration.version} of {registration.model_name}"
    if promotion.promoted:
        previous = f" (was v{promotion.previous_champion})" if promotion.previous_champion else ""
        return f"{version} is the new champion{previous}."
    champion = f"v{promotion.champion_version}" if promotion.champion_version else "none"
    return f"{version} stays challenger; the champion is still {champion}."


def run_summary(
    decision: Decision,
    evaluation: Evaluation | None = None,
    registration: Registration | None = None,
    promotion: Promotion | None = None,
) -> str:
    """The run in a few sentences, the outcome first (the UI shows the note's first line): the run's note."""
    if not decision.retrain:
        return clip(decision_sentence(decision))
    sentences = [f"Retrained because {decision.reason}."]
    if registration and promotion:
        sentences.insert(0, promotion_sentence(registration, promotion))
    elif registration:
        sentences.insert(0, f"Registered version {registration.version} of {registration.model_name} as challenger.")
    if evaluation:
        sentences.append(gate_sentence(evaluation))
    return clip(" ".join(sentences))


def version_description(run: RunInfo, decision: Decision, evaluation: Evaluation) -> str:
    """One line for the model version in MLflow: which run made it, why, and what the gate said."""
    gate = "gate passed" if evaluation.passed else "gate refused"
    return f"{run.dag_id} run {run.run_id}: retrained because {decision.reason}; {gate}: {evaluation.reason}."


def promotion_outcome(promotion: Promotion) -> str:
    """Appended to the version's description once ``promote`` has acted."""
    if promotion.promoted:
        return "Promoted to champion."
    champion = f"v{promotion.champion_version}" if promotion.champion_version else "none"
    return f"Not promoted: the champion is still {champion}."


def clip(text: str, limit: int = NOTE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
