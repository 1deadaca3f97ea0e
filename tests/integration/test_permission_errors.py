"""A permission error is one sentence naming the user, the resource and the command or grant that fixes
it, and ends the task at once: MongoDB refusals come from the real local server (the pipeline's user on a
collection it was never granted); S3 and MLflow refusals are built as their clients raise them (the local
moto and MLflow servers run without authorization)."""

from __future__ import annotations

import re
import uuid

import pytest
from airflow.sdk.exceptions import AirflowFailException
from botocore.exceptions import ClientError
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST

from include.retraining import onboard
from include.retraining.adapters import mongo, registry, storage
from include.retraining.airflow.task import failing_fast, permission_denied
from include.retraining.core.config import with_overrides
from tests.integration.conftest import ADMIN_CONN_ID

pytestmark = pytest.mark.integration


@pytest.fixture
def ungranted(stack_env):
    """A database and collection with documents that only the administrator may read."""
    database, collection = f"secret_{uuid.uuid4().hex[:8]}", "claims"
    mongo.insert_documents([{"x": 1}], database=database, collection=collection, conn_id=ADMIN_CONN_ID)
    yield database, collection
    mongo.client(ADMIN_CONN_ID).drop_database(database)


def refusal(database: str, collection: str) -> Exception:
    try:
        mongo.collection("mongo_default", database, collection).find_one()
    except Exception as error:  # the real server's refusal, as a stage meets it
        return error
    raise AssertionError(f"the pipeline's user could read {database}.{collection}")


def test_onboarding_a_collection_the_pipeline_may_not_read_says_what_to_run(ungranted, capsys, tmp_path):
    database, collection = ungranted
    out = tmp_path / "claims.json"

    code = onboard.main(["--db", database, "--collection", collection, "--label", "y", "--out", str(out)])

    error = capsys.readouterr().err
    assert code == 2
    assert not out.exists()
    assert "Traceback" not in error
    assert error.count("\n") == 1
    assert error == (
        f"onboard: MongoDB user 'retrain_pipeline' (connection mongo_default) may not find in database {database} "
        "(the model's claims there): "
        f"sample it as MongoDB's administrator (make onboard DB={database} COLLECTION=claims LABEL=y "
        "CONN=mongo_admin), then grant the pipeline's role the model's collections (make mongo-setup MODEL=claims)\n"
    )


def test_a_stage_refused_by_mongodb_fails_at_once_with_the_grant(ungranted, config_factory):
    database, collection = ungranted
    config = with_overrides(config_factory(), source={"database": database, "collection": collection})
    error = refusal(database, collection)

    with pytest.raises(AirflowFailException) as raised:
        failing_fast(lambda: (_ for _ in ()).throw(error), lambda e: permission_denied(e, config, "retrain_claims"))

    assert str(raised.value) == (
        "permission denied (not retried): MongoDB user 'retrain_pipeline' (connection mongo_default) may not find "
        f"in database {database} (the model's {collection}, {config.monitoring.collection}, monitor_state, predictions "
        "there): "
        "as MongoDB's administrator, grant the pipeline's role this model's collections: make mongo-setup MODEL=claims"
    )


def test_other_errors_keep_their_retries(config_factory):
    config = config_factory()
    outage = ConnectionError("connection refused")

    with pytest.raises(ConnectionError):
        failing_fast(lambda: (_ for _ in ()).throw(outage), lambda e: permission_denied(e, config, "retrain_x"))
    missing = MlflowException("no such model", error_code=RESOURCE_DOES_NOT_EXIST)
    assert registry.denied(missing, config.mlflow, config.model_name) is None
    assert storage.denied(ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject"), config.storage) is None


def test_an_s3_refusal_names_the_key_the_bucket_and_the_grant(config_factory):
    config = config_factory()
    refused = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")

    sentence = storage.denied(refused, config.storage)

    bucket, prefix = config.storage.bucket, config.storage.prefix
    assert re.match(
        rf"S3 access key '\w+' \(connection aws_default\) was refused PutObject on s3://{bucket}/", sentence
    )
    assert f"grant it s3:ListBucket on arn:aws:s3:::{bucket} and s3:GetObject, s3:PutObject" in sentence
    assert f"arn:aws:s3:::{bucket}/{prefix}/*" in sentence


def test_an_mlflow_refusal_names_the_user_the_server_and_the_permissions(config_factory, monkeypatch):
    config = config_factory()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "airflow")
    refused = MlflowException("Permission denied", error_code=PERMISSION_DENIED)

    sentence = registry.denied(refused, config.mlflow, config.model_name)

    assert sentence == (
        f"MLflow user 'airflow' was refused by {config.mlflow.tracking_uri} (PERMISSION_DENIED): give it EDIT on "
        f"experiment {config.mlflow.experiment!r} and MANAGE on registered model {config.model_name!r} (MLflow's "
        "permissions API, or the UI's admin page), or set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"
    )
