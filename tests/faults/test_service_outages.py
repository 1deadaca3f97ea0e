"""Each service of the stack goes away during the stage that needs it and comes back: the stage fails,
its retry succeeds, and the run ends as one clean run would (one version, one drift check, the champion
the old one or a gate-approved new one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.retraining.core.config import PipelineConfig
from tests.faults.conftest import (
    SMALL_MODEL,
    STAGES,
    Attempt,
    Stack,
    assert_clean,
    call_stage,
    champion_version,
    document_count,
    drift_checks,
    new_run,
    retrain,
    run_versions,
    with_champion,
)

pytestmark = [
    pytest.mark.faults,
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning"),
]


@pytest.fixture(scope="module")
def config(config_factory, fault_env) -> PipelineConfig:
    return with_champion(
        config_factory(SMALL_MODEL, {"source": {"conn_id": "mongo_faults"}, "storage": {"conn_id": "aws_faults"}}),
        seed=11,
    )


def report(attempt: Attempt) -> str:
    promotion = attempt.records["promote"]
    return f"failed first: {attempt.failures}; then: {promotion.reason}"


def test_mongodb_stopped_during_extract(config, stack: Stack):
    before, run = champion_version(config), new_run(config, "mongo-extract")

    attempt = retrain(config, run, "extract", lambda: stack.down("mongo"))

    assert "ServerSelectionTimeoutError" in attempt.failures["extract"], report(attempt)
    assert attempt.records["extract"].rows == document_count(config)
    assert_clean(config, run.run_id, before)


def test_mongodb_stopped_before_the_drift_check_is_recorded(config, stack: Stack):
    before, run = champion_version(config), new_run(config, "mongo-drift")

    attempt = retrain(config, run, "detect_drift", lambda: stack.down("mongo"))

    [check] = drift_checks(config, run.run_id)  # recorded by the retry, not lost, not doubled
    assert str(check["_id"]) == attempt.records["detect_drift"].check_id
    assert_clean(config, run.run_id, before)


def test_s3_unreachable_during_train(config, stack: Stack):
    before, run = champion_version(config), new_run(config, "s3-train")

    attempt = retrain(config, run, "train", lambda: stack.frozen("s3"))

    assert attempt.failures["train"], report(attempt)
    assert run_versions(config, run.run_id) == [attempt.records["register"].version]
    assert_clean(config, run.run_id, before)


def test_mlflow_stopped_during_register(config, stack: Stack):
    before, run = champion_version(config), new_run(config, "mlflow-register")

    attempt = retrain(config, run, "register", lambda: stack.down("mlflow"))

    assert run_versions(config, run.run_id) == [attempt.records["register"].version], report(attempt)
    assert_clean(config, run.run_id, before)


def test_smtp_stopped_during_notify_keeps_the_promotion_and_says_so(config, stack: Stack, stack_env):
    """A mail outage is no failure of the run: notify finishes, says the summary was not sent and why, and
    the promotion stands (Airflow would not fail a run whose model was promoted because a mail bounced)."""
    before, run = champion_version(config), new_run(config, "smtp-notify")
    sink = Path(stack_env["MAIL_SINK_DIR"]) / "new"
    attempt = Attempt(run)
    for name in STAGES[:-1]:
        attempt.records[name] = call_stage(name, config, attempt)

    with stack.down("smtp"):
        sent = call_stage("notify", config, attempt)

    assert sent["sent"] is False
    assert config.notify.conn_id in sent["error"]
    promotion = attempt.records["promote"]
    assert champion_version(config) == promotion.champion_version  # the failed mail undid nothing
    mails = [path for path in sink.iterdir() if run.run_id in path.read_text(errors="replace")]
    assert mails == [], "a summary went out although SMTP was down"
    assert_clean(config, run.run_id, before)
