"""Every task may run twice: a retried or cleared stage ends in the same state as one clean run, the mails
say what the run really did, and a model artifact loads only if it is the one registered and holds only
allowlisted types. Against the real MongoDB, S3, MLflow and SMTP sink of the local stack."""

from __future__ import annotations

import logging
import shutil
import uuid
import warnings
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from include.demo.sample_data import generate_documents
from include.retraining.adapters import airflow_api, mongo, registry
from include.retraining.airflow.dag_defaults import mail_task_failure
from include.retraining.core.config import resolved
from include.retraining.core.records import (
    DriftResult,
    Evaluation,
    Promotion,
    Registration,
    RunInfo,
    TrainingResult,
    ValidationReport,
)
from include.retraining.stages import (
    decide,
    detect_drift,
    evaluate,
    extract,
    promote,
    refit,
    register,
    train,
    validate,
)
from include.retraining.stages.model import ALREADY_DONE, monitor_report_url
from include.retraining.stages.outcome import mail_drift_alert, run_outcome
from tests.integration.test_notify_smtp import delivered_to, html_of

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::UserWarning")]


@dataclass(frozen=True)
class FirstRun:
    run: RunInfo
    validation: ValidationReport
    drift: DriftResult
    training: TrainingResult
    evaluation: Evaluation
    final: TrainingResult
    registration: Registration
    promotion: Promotion


@pytest.fixture(scope="module")
def config(config_factory):
    return config_factory()


@pytest.fixture(scope="module")
def first(config) -> FirstRun:
    """One run, every stage called twice in a row, as Airflow does when a task is retried."""
    end = datetime.now(UTC)
    docs = generate_documents(1_500, start=end - timedelta(days=10), end=end - timedelta(minutes=1), seed=7)
    mongo.insert_documents(docs, database=config.source.database, collection=config.source.collection)
    run = RunInfo(dag_id="retrain_vehicle_insurance", run_id=f"retry__{uuid.uuid4().hex}", run_end=end.isoformat())
    snapshot = extract(config, run)
    validation = validate(config, run, snapshot)
    drift = detect_drift(config, run, validation)
    assert detect_drift(config, run, validation) == drift  # the retry finds its own check
    training = train(config, run, validation, drift)
    assert train(config, run, validation, drift) == training
    evaluation = evaluate(config, training)
    final = refit(config, run, training, evaluation)
    assert refit(config, run, training, evaluation) == final  # the retry finds the refit model, fits none
    decision = decide(config, run, drift)
    registration = register(config, run, validation, drift, final, evaluation, decision)
    assert register(config, run, validation, drift, final, evaluation, decision).version == registration.version
    promotion = promote(config, registration, evaluation)
    assert promote(config, registration, evaluation) == promotion  # not "champion moved during this run"
    return FirstRun(run, validation, drift, training, evaluation, final, registration, promotion)


def test_a_retried_detect_drift_keeps_one_check_per_run(config, first):
    checks = mongo.collection(config.source.conn_id, config.monitoring_database, config.monitoring.collection)
    assert checks.count_documents({"run_id": first.run.run_id}) == 1


def test_a_retried_train_and_refit_log_one_model_each_into_the_run(config, first):
    client = registry.client(config.mlflow)
    experiment = client.get_experiment_by_name(config.mlflow.experiment).experiment_id
    models = client.search_logged_models([experiment], filter_string=f"source_run_id = '{first.drift.mlflow_run_id}'")
    assert sorted((m.name, m.model_uri) for m in models) == [
        (registry.MODEL_ARTIFACT, first.training.model_uri),
        (registry.REFIT_ARTIFACT, first.final.model_uri),
    ]
    assert first.final.refitted
    assert registry.champion(config.mlflow, config.model_name).model_sha256 == first.final.model_sha256


def test_a_retried_register_and_promote_leave_one_version_and_one_champion(config, first):
    versions = registry.client(config.mlflow).search_model_versions(f"name = '{config.model_name}'")
    assert [v.version for v in versions] == ["1"]
    assert first.promotion == Promotion(True, "1", None, first.promotion.reason)
    assert registry.champion(config.mlflow, config.model_name).version == "1"


def test_a_retried_register_and_promote_say_it_was_already_done(config, first, caplog):
    decision = decide(config, first.run, first.drift)
    caplog.set_level(logging.INFO, logger="include.retraining.stages.model")

    again = register(config, first.run, first.validation, first.drift, first.final, first.evaluation, decision)
    assert promote(config, again, first.evaluation) == first.promotion

    said = [record.getMessage() for record in caplog.records]
    assert f"register: version 1 was registered by an earlier try; {ALREADY_DONE}" in said, said
    assert f"promote: version 1 became champion in an earlier try; {ALREADY_DONE}" in said, said
    assert not [line for line in said if "is the new champion" in line], said


def test_the_outcome_is_read_from_the_registry(config, first):
    assert run_outcome(config, first.run.run_id) == (
        f"This run registered {config.model_name} version 1, and it is the champion now (moved by this run)."
    )
    assert run_outcome(config, "never__ran") == (
        f"This run registered no version of {config.model_name}; the champion (version 1) was not moved by it."
    )


def test_the_failure_mail_says_what_the_run_really_did(stack_env, config, first):
    record = resolved("vehicle_insurance", config).to_dict()  # the run's resolve_config XCom
    context = {
        "ti": SimpleNamespace(task_id="notify", try_number=1, xcom_pull=lambda task_ids: record),
        "dag_run": SimpleNamespace(dag_id="retrain_vehicle_insurance", run_id=first.run.run_id),
        "params": {},
        "exception": RuntimeError("smtp down"),
    }

    mail_task_failure(context)

    body = html_of(delivered_to(stack_env, config.notify.recipients[0]))
    assert "smtp down" in body
    assert "version 1, and it is the champion now (moved by this run)" in body
    assert f'<a href="{airflow_api.run_url(first.run.dag_id, first.run.run_id)}">' in body


def test_the_version_links_its_airflow_run_and_a_triggering_check_links_its_report(config, first):
    tags = registry.version_tags(config.mlflow, config.model_name, first.registration.version)
    airflow_url = tags["airflow_run_url"]
    assert airflow_url == airflow_api.run_url(first.run.dag_id, first.run.run_id)
    assert airflow_url.startswith("http")
    assert first.run.run_id.replace(":", "%3A").replace("+", "%2B") in airflow_url
    assert "trigger.drift_report_url" not in tags  # a run no drift check triggered
    check = replace(first.drift, report_uri=f"runs:/{first.drift.mlflow_run_id}/{registry.DRIFT_REPORT}")
    report_url = monitor_report_url(config, replace(first.run, monitor_check=check))
    assert report_url == registry.artifact_url(config.mlflow, check.report_uri)
    assert report_url.startswith("http")


def test_a_drift_alert_goes_out_once_per_check(stack_env, config, first):
    drifted = replace(first.drift, status="drift", drift_share=0.5)
    recipient = f"once-{uuid.uuid4().hex[:8]}@example.com"
    notify_once = replace(config, notify=replace(config.notify, recipients=(recipient,)))

    sent = mail_drift_alert(notify_once, first.run, drifted, None)
    again = mail_drift_alert(notify_once, first.run, drifted, None)

    assert sent["sent"] is True
    assert again["sent"] is False
    assert "already sent" in again["reason"]
    delivered_to(stack_env, recipient)  # exactly one message (it fails on zero or several)


def test_a_mail_outage_does_not_fail_the_retrain_alert(config, first):
    broken = replace(config, notify=replace(config.notify, conn_id="smtp_nowhere"))
    drifted = replace(first.drift, status="drift", drift_share=0.5, check_id=None)

    result = mail_drift_alert(broken, first.run, drifted, None, tolerate_outage=True)

    assert result["sent"] is False
    assert "smtp_nowhere" in result["error"]


def test_a_tampered_artifact_is_refused(config, first):
    with pytest.raises(registry.UntrustedModelError, match="changed after registration"):
        registry.load_model(config.mlflow, first.training.model_uri, "0" * 64)
    with pytest.raises(registry.UntrustedModelError, match="no recorded model_sha256"):
        registry.load_model(config.mlflow, first.training.model_uri, None)


def test_a_model_with_an_untrusted_type_is_refused(config, first):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    planted = make_pipeline(FunctionTransformer(func=shutil.rmtree))  # would delete folders when it runs
    mlflow = registry.fluent(config.mlflow)
    with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name(config.mlflow.experiment).experiment_id):
        uri = mlflow.sklearn.log_model(planted, name="planted", skops_trusted_types=["shutil.rmtree"]).model_uri

    with pytest.raises(registry.UntrustedModelError, match="outside the allowlist"):
        registry.load_model(config.mlflow, uri, registry.model_digest(config.mlflow, uri))


def test_loading_a_model_logs_no_third_party_deprecation_flood(config, first):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.load_model(config.mlflow, first.training.model_uri, first.training.model_sha256)

    deprecated = [w for w in caught if "deprecated" in str(w.message)]
    assert len(deprecated) < 5, [str(w.message) for w in deprecated[:3]]
