"""The approval request of a retrain whose model requires one (``gate.approval: required``): what the
``approve`` task (Airflow's ApprovalOperator, ``airflow.approval``) asks, or why it asks nobody."""

from __future__ import annotations

import logging
from typing import Any

from include.retraining.adapters import registry
from include.retraining.core.approval import approval_body, approval_subject, unasked_reason
from include.retraining.core.config import PipelineConfig
from include.retraining.core.records import DriftResult, Evaluation, Registration

log = logging.getLogger(__name__)


def approval_request(
    config: PipelineConfig, drift: DriftResult, evaluation: Evaluation, registration: Registration
) -> dict[str, Any]:
    """The operator's arguments: ``asked`` (a person must answer), ``reason`` (why nobody is, otherwise),
    ``subject``, ``body`` (markdown: the gate's evidence and the links) and ``timeout_hours``."""
    request: dict[str, Any] = {"timeout_hours": config.gate.approval_timeout_hours, "subject": "", "body": ""}
    unasked = unasked_reason(config.gate, evaluation)
    if unasked:
        log.info("nobody is asked to approve: %s", unasked)
        return request | {"asked": False, "reason": unasked}
    name, version = config.model_name, registration.version
    links = {"Model version in MLflow": registry.version_url(config.mlflow, name, version)}
    if drift.report_uri:
        links["Drift report"] = registry.artifact_url(config.mlflow, drift.report_uri)
    body = approval_body(name, version, evaluation, drift, config.gate, links)
    log.info("asking for approval of version %s:\n%s", version, body)
    return request | {"asked": True, "reason": "", "subject": approval_subject(name, version), "body": body}
