"""Approval before promotion (``gate.approval: required``): whether a person is asked, what they read,
what their answer means, and whether promote may act on it.

Pure: the ``approval_request`` stage builds the links and the request, Airflow's ApprovalOperator
(``airflow.approval``) collects the answer, ``promote`` reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from include.retraining.core.config import GateConfig
from include.retraining.core.records import Approval, DriftResult, Evaluation

APPROVE, REJECT = "Approve", "Reject"  # ApprovalOperator's two options


def unasked_reason(gate: GateConfig, evaluation: Evaluation) -> str | None:
    """Why nobody is asked to approve, or None when a person must answer: only a challenger the gate
    passed needs one, and only when the run's config requires it."""
    if gate.approval != "required":
        return "gate.approval is automatic"
    if not evaluation.passed:
        return f"the gate refused the challenger, so there is nothing to approve ({evaluation.reason})"
    return None


def approval_subject(model_name: str, version: str) -> str:
    return f"Promote {model_name} version {version} to champion?"


def approval_body(
    model_name: str,
    version: str,
    evaluation: Evaluation,
    drift: DriftResult,
    gate: GateConfig,
    links: Mapping[str, str],
) -> str:
    """The request a person reads (markdown): the gate's evidence (every holdout metric of both models, the
    improvement against the margin, the bootstrap win share), the drifted columns with how far they moved,
    and the links to the version and the drift report."""
    champion = f"v{evaluation.champion_version}" if evaluation.champion_version else "none"
    lines = [
        f"**{model_name} version {version}** passed the promotion gate against the champion ({champion}).",
        "",
        f"Gate: {evaluation.reason}.",
        "",
        *metrics_table(evaluation, version, champion),
        "",
        *gate_figures(evaluation, gate),
        "",
        *drift_lines(drift),
        "",
        " · ".join(f"[{name}]({url})" for name, url in links.items()),
        "",
        f"**Approve** makes version {version} the champion; **Reject** keeps {champion}. "
        f"No answer within {hours(gate.approval_timeout_hours)} counts as Reject.",
    ]
    return "\n".join(lines)


def metrics_table(evaluation: Evaluation, version: str, champion: str) -> list[str]:
    rows = [f"| holdout metric | challenger v{version} | champion {champion} |", "| --- | ---: | ---: |"]
    for name, value in evaluation.challenger.items():
        theirs = (evaluation.champion or {}).get(name)
        label = f"**{name}** (primary)" if name == evaluation.primary_metric else name
        rows.append(f"| {label} | {value:.4f} | {'-' if theirs is None else f'{theirs:.4f}'} |")
    return rows


def gate_figures(evaluation: Evaluation, gate: GateConfig) -> list[str]:
    if evaluation.improvement is None or evaluation.confidence is None:
        return ["- No champion to compare with: the challenger was judged against the floor only."]
    unit = " label std" if gate.min_improvement_unit == "label_std" else ""
    return [
        f"- Improvement on {evaluation.primary_metric}: {evaluation.improvement:+.4f} "
        f"(margin: {gate.min_improvement:g}{unit})",
        f"- Confidence: the challenger wins {evaluation.confidence:.1%} of the paired bootstrap resamples "
        f"(needs {gate.confidence:.1%})",
    ]


def drift_lines(drift: DriftResult) -> list[str]:
    drifted = [column for column in drift.columns if column.drifted]
    head = f"Drift: {drift.status}, {len(drifted)} of {len(drift.columns)} columns drifted"
    if not drifted:
        return [f"{head}."]
    rows = [f"{head}:", "", "| column | test | score / threshold | shift |", "| --- | --- | ---: | --- |"]
    for column in drifted:
        score = f"{column.score:.4g} / {column.threshold:.4g}"
        rows.append(f"| {column.column} | {column.method} | {score} | {column.shift or '-'} |")
    return rows


def hours(value: float) -> str:
    return f"{value:g} h"


def approval_answer(
    chosen: Sequence[str], by: str | None, at: datetime, timed_out: bool, timeout_hours: float
) -> Approval:
    """What the operator's answer means: Approve; Reject; or no answer before the timeout (the scheduler
    then answers the default, Reject, with nobody named)."""
    when = at.astimezone(UTC).isoformat(timespec="seconds")
    shown = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if timed_out:
        return Approval("timed_out", f"no answer within {hours(timeout_hours)}", at=when)
    if list(chosen) == [APPROVE]:
        return Approval("approved", f"approved by {by} at {shown}", by=by, at=when)
    return Approval("rejected", f"rejected by {by} at {shown}", by=by, at=when)


def not_asked(reason: str) -> Approval:
    return Approval("not_asked", f"not asked: {reason}")


def approval_refusal(gate: GateConfig, evaluation: Evaluation, approval: Approval | None) -> str | None:
    """Why promote must not move the champion to a challenger the gate passed, for want of approval; None
    when it may. ``approval`` is None when the DAG has no approval step (its model file says automatic)."""
    if not evaluation.passed:
        return None  # the gate's own refusal stands
    if approval is None:
        if gate.approval == "required":
            return (
                "not approved: gate.approval is required by this run's config, but this DAG has no approval "
                "step (its shape follows the model's file): set gate.approval there"
            )
        return None
    if approval.outcome in ("approved", "not_asked"):
        return None
    return f"not approved: {approval.reason}"
