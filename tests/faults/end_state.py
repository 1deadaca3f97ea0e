"""What a model's runs left in the outside systems, in a form two models can be compared in: the registered
versions (their tags and descriptions), the aliases, the models logged to MLflow, the drift-check
documents, the monitor's watermark, the objects on S3 and the mails in the SMTP sink.

A fault run and its reference (a clean run of identical data under other names) differ only in names and
generated ids, so those are replaced by placeholders: the model, its collections, experiment and S3 prefix,
the Airflow run ids (``runs``: placeholder -> run id, also as quoted in a link to the run's page, whose host is
each run's Airflow), MLflow run and model ids, MongoDB ObjectIds, and
the moments things were written (``*_at`` keys), and ``model_sha256``: a refit of the same rows with the
same seed predicts the same (the holdout metrics are compared), but its skops file differs byte for byte.
Everything else must be equal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from include.retraining.adapters import mongo, registry, storage
from include.retraining.core.config import PipelineConfig
from scripts.local_stack.smtp import delivered_to
from tests.integration.conftest import ADMIN_CONN_ID

GENERATED = [
    (re.compile(r"https?://[^/\s]+/dags/"), "<airflow-ui>/dags/"),  # the UI each run's Airflow serves
    (re.compile(r"/experiments/\d+"), "/experiments/<id>"),
    (re.compile(r"\bm-[0-9a-f]{32}\b"), "<logged-model>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<mlflow-run>"),
    (re.compile(r"\b[0-9a-f]{24}\b"), "<object-id>"),
]
NOT_REPRODUCIBLE = {"model_sha256"}


def end_state(config: PipelineConfig, runs: Mapping[str, str], watermark_key: str | None = None) -> dict[str, Any]:
    names = substitutions(config, runs)
    state = {
        "versions": versions(config),
        "aliases": aliases(config),
        "logged_models": logged_models(config),
        "drift_checks": drift_checks(config),
        "s3_objects": s3_objects(config),
        "mails": mails(config),
    }
    if watermark_key:
        state["watermark"] = watermark(config, watermark_key)
    return normalized(state, names)


def substitutions(config: PipelineConfig, runs: Mapping[str, str]) -> list[tuple[str, str]]:
    pairs = [(run_id, f"<{role}>") for role, run_id in runs.items()]
    pairs += [(storage.safe_segment(run_id), f"<{role}>") for role, run_id in runs.items()]
    pairs += [(quote(run_id), f"<{role}>") for role, run_id in runs.items()]  # in a run's Airflow URL
    pairs += [
        (config.monitoring.collection, "<checks>"),
        (config.storage.prefix, "<prefix>"),
        (config.mlflow.experiment, "<experiment>"),
        (config.model_name, "<model>"),
        (config.source.collection, "<collection>"),
    ]
    return sorted(pairs, key=lambda pair: -len(pair[0]))  # the longest first: names contain each other


def normalized(value: Any, names: list[tuple[str, str]]) -> Any:
    if isinstance(value, Mapping):
        kept = {k: v for k, v in value.items() if not str(k).endswith("_at") and k not in NOT_REPRODUCIBLE}
        return {normalized(k, names): normalized(v, names) for k, v in kept.items()}
    if isinstance(value, list | tuple):
        return [normalized(item, names) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        for name, placeholder in names:
            value = value.replace(name, placeholder)
        for pattern, placeholder in GENERATED:
            value = pattern.sub(placeholder, value)
        return value
    return value if isinstance(value, int | float | bool | None) else str(value)


def versions(config: PipelineConfig) -> list[dict[str, Any]]:
    client = registry.client(config.mlflow)
    found = client.search_model_versions(f"name = '{config.model_name}'")
    return [
        {"version": v.version, "tags": dict(v.tags), "description": v.description or ""}
        for v in sorted(found, key=lambda v: int(v.version))
    ]


def aliases(config: PipelineConfig) -> dict[str, str]:
    return dict(registry.client(config.mlflow).get_registered_model(config.model_name).aliases)


def logged_models(config: PipelineConfig) -> list[str]:
    """Each model logged to the experiment, by its name and the run that logged it (one per run and name)."""
    client = registry.client(config.mlflow)
    experiment = client.get_experiment_by_name(config.mlflow.experiment).experiment_id
    runs = {run.info.run_id: run.data.tags.get("airflow_run_id") for run in client.search_runs([experiment])}
    return sorted(f"{runs.get(m.source_run_id)}/{m.name}/{m.status}" for m in client.search_logged_models([experiment]))


def drift_checks(config: PipelineConfig) -> list[dict[str, Any]]:
    checks = mongo.client(ADMIN_CONN_ID)[config.monitoring_database][config.monitoring.collection]
    return [without_id(doc) for doc in checks.find({}).sort("run_id")]


def watermark(config: PipelineConfig, key: str) -> dict[str, Any] | None:
    states = mongo.client(ADMIN_CONN_ID)[config.monitoring_database][config.monitoring.state_collection]
    found = states.find_one({"_id": key})
    return without_id(found) if found else None


def without_id(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key != "_id"}


def s3_objects(config: PipelineConfig) -> dict[str, str]:
    """Every object under the model's prefix: key -> ETag (the MD5 of its bytes)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    client = S3Hook(aws_conn_id=config.storage.conn_id).get_conn()
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=config.storage.bucket, Prefix=f"{config.storage.prefix}/"
    )
    return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", [])}


def mails(config: PipelineConfig) -> list[str]:
    """The subjects of the mails to the model's recipients, with their attachments' names."""
    found = []
    for recipient in config.notify.recipients:
        for message in delivered_to(recipient):
            attached = sorted(part.get_filename() or "" for part in message.iter_attachments())
            found.append(f"{message['Subject']} {attached}")
    return sorted(found)
