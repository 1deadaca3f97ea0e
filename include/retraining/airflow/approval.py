"""The ``approve`` task of a retrain DAG whose model's file requires approval (``gate.approval``):
Airflow's ApprovalOperator, asking only when ``approval_request`` says a person must answer.

On Airflow 3.3 the task parks in the ``awaiting_input`` state; the REST API's HITL response (the UI's
Required Actions) or the scheduler's timeout sweep resumes it. Its answer, Approve, Reject or none before
the timeout, is its XCom, an ``Approval`` record that ``promote`` takes: promote runs on every answer and
says why it did not promote. Imported at DAG parse time, by a DAG with the approval step only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator

from include.retraining.core.approval import REJECT, approval_answer, not_asked

APPROVE_TASK = "approve"


class PromotionApproval(ApprovalOperator):
    """Asks (subject, body) when ``asked``; otherwise answers at once with the ``reason`` nobody was asked.
    The response timeout is the run's ``timeout_hours``; no answer by then is the default, Reject."""

    template_fields = (*ApprovalOperator.template_fields, "asked", "reason", "timeout_hours")

    def __init__(self, *, asked: Any, reason: Any, timeout_hours: Any, **kwargs: Any) -> None:
        super().__init__(defaults=REJECT, **kwargs)
        self.asked, self.reason, self.timeout_hours = asked, reason, timeout_hours

    def execute(self, context: Any) -> Any:
        if not self.asked:
            self.log.info("nobody is asked: %s", self.reason)
            return not_asked(self.reason).to_dict()
        self.response_timeout = timedelta(hours=self.timeout_hours)  # the run's config, not the file's
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        # HITLOperator's completion checks the answer; ApprovalOperator's would also skip promote on Reject,
        # and promote must run to record why the champion stays
        answer = HITLOperator.execute_complete(self, context=context, event=event)
        user = answer.get("responded_by_user") or {}
        approval = approval_answer(
            answer["chosen_options"], user.get("name"), answer["responded_at"], bool(event.get("timedout")),
            self.timeout_hours,
        )  # fmt: skip
        self.log.info("approval of the promotion: %s", approval.reason)
        return approval.to_dict()


def approve(request: Any, timeout_hours: float) -> Any:
    """The ``approve`` task, its arguments from ``request``, the XComArg of the ``approval_request`` task
    (an unpacked stage); ``timeout_hours`` (the model file's) until the run's own replaces it."""
    return PromotionApproval(
        task_id=APPROVE_TASK,
        subject=request["subject"],
        body=request["body"],
        asked=request["asked"],
        reason=request["reason"],
        timeout_hours=request["timeout_hours"],
        # set here so the operator does not take the task's execution_timeout for it
        response_timeout=timedelta(hours=timeout_hours),
    ).output
