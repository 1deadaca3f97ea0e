"""``make onboard`` on public scikit-learn datasets loaded into the stack's MongoDB, each with its timestamp
in another stored form: the inferred objective, classes, feature kinds, id and timestamp types are right,
and the written file loads with the pipeline's config loader."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.demo.datasets import END, documents
from include.retraining import onboard
from include.retraining.adapters import mongo, registry, storage
from include.retraining.core import config as config_module
from include.retraining.core.config import load_config
from include.retraining.core.onboarding import TRAINING
from include.retraining.core.records import RunInfo
from include.retraining.stages import decide, detect_drift, evaluate, extract, promote, refit, register, train, validate
from tests.integration.conftest import ADMIN_CONN_ID

pytestmark = pytest.mark.integration

CASES = {
    # dataset, timestamp form, int ids -> objective, classes, id type
    "breast_cancer": ("date", False, "binary", [0, 1], "objectid"),
    "wine": ("iso_string", False, "multiclass", ["class_0", "class_1", "class_2"], "objectid"),
    "diabetes": ("epoch_millis", False, "regression", None, "objectid"),
    "digits": ("epoch_seconds", True, "multiclass", list(range(10)), "int"),
}


@pytest.fixture(scope="module")
def loaded(stack_env) -> Iterator[tuple[str, dict[str, list[dict]]]]:
    """A database holding every dataset of CASES in its timestamp form: its name and the documents."""
    database = f"onboard_{uuid.uuid4().hex[:8]}"
    docs = {}
    for dataset, (stored, int_ids, *_) in CASES.items():
        docs[dataset] = documents(dataset, timestamp_type=stored, int_ids=int_ids)
        mongo.insert_documents(docs[dataset], database=database, collection=dataset, conn_id=ADMIN_CONN_ID)
    yield database, docs
    mongo.client(ADMIN_CONN_ID).drop_database(database)


@pytest.fixture(scope="module")
def database(loaded) -> str:
    return loaded[0]


def onboarded(database: str, collection: str, out: Path, *extra: str) -> tuple[dict, str]:
    """``make onboard`` in this process (the CLI itself is run once, by ``test_make_onboard``)."""
    args = ["--db", database, "--collection", collection, "--label", "target", "--conn", ADMIN_CONN_ID]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert onboard.main([*args, "--out", str(out), *extra]) == 0
    return json.loads(out.read_text()), printed.getvalue()


def test_make_onboard(database, tmp_path):
    out = tmp_path / "cancer.json"
    variables = [f"DB={database}", "COLLECTION=breast_cancer", "LABEL=target", "CONN=mongo_admin", f"OUT={out}"]

    completed = subprocess.run(["make", "onboard", *variables], capture_output=True, text=True, check=False)

    assert completed.returncode == 0, completed.stderr
    assert ".venv/bin/airflow dags test retrain_breast_cancer 2024-06-30" in completed.stdout
    dags = "retrain_breast_cancer, drift_monitor_breast_cancer, rollback_breast_cancer, score_breast_cancer"
    assert f"DAGs: {dags}" in completed.stdout
    assert json.loads(out.read_text())["contract"]["label"]["objective"] == "binary"


@pytest.mark.parametrize("dataset", CASES)
def test_onboarding_infers_the_dataset(loaded, dataset, tmp_path):
    database, documents_of = loaded
    stored, _, objective, classes, id_type = CASES[dataset]
    docs = documents_of[dataset]

    config, printed = onboarded(database, dataset, tmp_path / f"{dataset}.json")

    label, source = config["contract"]["label"], config["source"]
    features = {feature["name"]: feature for feature in config["contract"]["features"]}
    assert (label["objective"], label.get("classes")) == (objective, classes)
    assert (source["id_type"], source["timestamp_field"], source["timestamp_type"]) == (id_type, "observed_at", stored)
    assert source["conn_id"] == "mongo_default"  # the pipeline's own user, not the one that onboarded
    assert set(features) == set(docs[0]) - {"_id", "target", "observed_at"}
    assert {feature["kind"] for feature in features.values()} == {"numeric"}
    for name, feature in features.items():  # bounded by the sign only: the sample's range is information
        assert "max" not in feature, name
        assert feature.get("min") == (0.0 if min(doc[name] for doc in docs) >= 0 else None), name
    assert set(config["_onboarding"]["sample_ranges"]) == set(features)
    assert config["start_date"] == "2024-05-01"  # 60 days up to END: the earliest document's day
    assert config["gate"]["primary_metric"] == TRAINING[objective][2]
    assert f"DAGs: retrain_{dataset}, drift_monitor_{dataset}, rollback_{dataset}, score_{dataset}" in printed
    grant, first_run = config["_onboarding"]["next"]
    assert f"mongo_setup --admin-conn-id mongo_admin --model-file {tmp_path / dataset}.json" in grant
    assert first_run.endswith(f".venv/bin/airflow dags test retrain_{dataset} {END.date().isoformat()}")
    assert f"1. {grant}" in printed
    assert f"2. {first_run}" in printed


def test_binary_labels_get_the_positive_class_and_the_file_loads(database, tmp_path):
    config, _ = onboarded(database, "breast_cancer", tmp_path / "breast_cancer.json")

    loaded = load_config(base=tmp_path / "breast_cancer.json")  # the model file over the shared defaults

    assert loaded.contract.label.positive_class == 1
    assert loaded.start_date == "2024-05-01"
    assert loaded.source.timestamp_type == "date"
    assert len(loaded.contract.features) == 30
    assert loaded.training.hyperparameters == config["training"]["hyperparameters"]


@pytest.mark.parametrize("dataset", ["wine", "diabetes", "digits"])
def test_other_objectives_load_with_their_metric(database, dataset, tmp_path):
    config, _ = onboarded(database, dataset, tmp_path / f"{dataset}.json")

    loaded = load_config(base=tmp_path / f"{dataset}.json")

    objective = config["contract"]["label"]["objective"]
    assert loaded.contract.label.objective == objective
    assert loaded.gate.primary_metric == config["gate"]["primary_metric"]
    assert loaded.gate.primary_metric in config_module.METRICS[objective]


def test_a_guessed_timestamp_and_a_model_name(database, tmp_path):
    collection = f"iris_{uuid.uuid4().hex[:6]}"
    docs = documents("iris", timestamp_field="loaded_at", timestamp_type="iso_string")
    mongo.insert_documents(docs, database=database, collection=collection, conn_id=ADMIN_CONN_ID)

    config, printed = onboarded(database, collection, tmp_path / "iris.json", "--model", "Iris Species v2")

    assert config["model_name"] == "iris_species_v2"
    assert (config["source"]["timestamp_field"], config["source"]["timestamp_type"]) == ("loaded_at", "iso_string")
    assert config["contract"]["label"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert "retrain_iris_species_v2" in printed


def test_the_default_path_is_the_models_folder_and_is_not_overwritten(database, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RETRAIN_MODELS_DIR", str(tmp_path))
    args = ["--db", database, "--collection", "breast_cancer", "--label", "target", "--conn", ADMIN_CONN_ID]

    assert onboard.main(args) == 0
    assert (tmp_path / "breast_cancer.json").exists()
    assert onboard.main(args) == 2
    assert "exists: review and edit it, or pass FORCE=1" in capsys.readouterr().err


def test_a_missing_label_and_an_empty_collection_are_named(database, capsys):
    args = ["--db", database, "--conn", ADMIN_CONN_ID, "--out", "/dev/null/never"]

    assert onboard.main([*args, "--collection", "breast_cancer", "--label", "Target"]) == 2
    assert "label 'Target': no sampled document has it" in capsys.readouterr().err
    assert onboard.main([*args, "--collection", "nothing_here", "--label", "target"]) == 2
    assert "holds no documents" in capsys.readouterr().err


def test_an_onboarded_model_with_epoch_millis_and_int_ids_becomes_champion(config_factory, tmp_path):
    """The onboarded file as the pipeline's config: extract, validate, drift, train, evaluate, register and
    promote on breast_cancer stamped in epoch milliseconds with integer ids."""
    database, collection = f"onboard_{uuid.uuid4().hex[:8]}", "cancer_epoch_ms"
    docs = documents("breast_cancer", timestamp_type="epoch_millis", int_ids=True)
    mongo.insert_documents(docs, database=database, collection=collection, conn_id=ADMIN_CONN_ID)
    onboarded_config, _ = onboarded(database, collection, tmp_path / "cancer.json")
    deployment = {k: v for k, v in onboarded_config.items() if k not in ("model_name", "mlflow")}
    config = config_factory(deployment)  # the stack's bucket, MLflow and a unique model name
    run = RunInfo(
        dag_id=f"retrain_{config.model_name}", run_id=f"onboarded__{uuid.uuid4().hex}", run_end=END.isoformat()
    )

    snapshot = extract(config, run)
    validation = validate(config, run, snapshot)
    drift = detect_drift(config, run, validation)
    training = train(config, run, validation, drift)
    evaluation = evaluate(config, training)
    final = refit(config, run, training, evaluation)
    registration = register(config, run, validation, drift, final, evaluation, decide(config, run, drift))
    promotion = promote(config, registration, evaluation)

    assert (config.source.timestamp_type, config.source.id_type) == ("epoch_millis", "int")
    assert snapshot.rows == len(docs)
    assert validation.rows_quarantined == 0
    frame = storage.read_parquet(config.storage, validation.snapshot.uri)
    assert str(frame["observed_at"].dt.tz) == "UTC"
    assert sorted(frame["_id"].astype(int)) == list(range(1, len(docs) + 1))
    assert evaluation.challenger[config.gate.primary_metric] > 0.9
    assert promotion.promoted
    assert registry.champion(config.mlflow, config.model_name).version == registration.version
