"""The models a deployment runs: one config file per model, loaded at DAG parse time or reported."""

from __future__ import annotations

import json
import shutil

import pytest

from include.retraining.airflow.models import KINDS, broken_report, dag_id, discover, model_of, models_dir
from include.retraining.core.config import DEFAULT_CONFIG, MODELS_DIR, ConfigError, load_config


def test_every_json_file_is_a_model_and_its_stem_the_id(tmp_path):
    shutil.copy(DEFAULT_CONFIG, tmp_path / "vehicle_insurance.json")
    (tmp_path / "wine.json").write_text(json.dumps(json.loads(DEFAULT_CONFIG.read_text()) | {"model_name": "wine"}))
    (tmp_path / "notes.txt").write_text("not a model")

    models, broken = discover(tmp_path)

    assert [model.id for model in models] == ["vehicle_insurance", "wine"]
    assert broken == ()
    assert models[1].config.model_name == "wine"
    assert models[1].merged["storage"]["bucket"] == "mlops-artifacts"  # the shared defaults under the file


def test_a_broken_file_is_reported_with_its_error_and_the_rest_still_load(tmp_path):
    shutil.copy(DEFAULT_CONFIG, tmp_path / "good.json")
    (tmp_path / "typo.json").write_text(json.dumps({"model_name": "typo", "sorce": {}}))
    (tmp_path / "truncated.json").write_text('{"model_name": ')

    models, broken = discover(tmp_path)

    assert [model.id for model in models] == ["good"]
    errors = {model.id: model.error for model in broken}
    assert "typo.json: invalid configuration: " in errors["typo"]
    assert "config.sorce: unknown key: did you mean 'source'?" in errors["typo"]
    assert "truncated.json is not valid JSON" in errors["truncated"]
    report = broken_report(broken)
    assert report.startswith("2 model config(s) did not load; the other models' DAGs are unaffected.")
    assert ", ".join(dag_id(kind, "typo") for kind in KINDS) + " not loaded" in report


def test_unknown_hyperparameters_wait_for_the_run_so_parsing_never_imports_scikit_learn(tmp_path):
    config = json.loads(DEFAULT_CONFIG.read_text())
    config["training"]["hyperparameters"]["n_trees"] = 3
    (tmp_path / "m.json").write_text(json.dumps(config))

    models, broken = discover(tmp_path)

    assert [model.id for model in models] == ["m"]
    assert broken == ()
    with pytest.raises(ConfigError, match=r"\['n_trees'\] are not parameters"):  # the run's first task refuses it
        load_config(base=tmp_path / "m.json")


def test_the_models_folder_defaults_to_include_models():
    assert models_dir({}) == MODELS_DIR
    assert models_dir({"RETRAIN_MODELS_DIR": "/srv/models"}).as_posix() == "/srv/models"


def test_a_dag_id_names_its_model():
    assert [model_of(dag_id(kind, "drift_monitor_x")) for kind in KINDS] == ["drift_monitor_x"] * len(KINDS)
    assert model_of("some_other_dag") is None
