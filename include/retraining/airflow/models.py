"""The models a deployment runs: one ``<model>.json`` per model in the models folder, one DAG pair each.

Read at DAG parse time, so it stays cheap: the standard library and the config module only, each
file read and checked without scikit-learn (the run's first task checks the hyperparameters too), no
Variable, no network. A file that does not load is reported, not raised, so the other models' DAGs
still load (``dags/model_configs.py`` turns the reports into an import error).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.retraining.core.config import MODELS_DIR, ConfigError, PipelineConfig, config_from, merged_config

MODELS_DIR_ENV = "RETRAIN_MODELS_DIR"
KINDS = ("retrain", "drift_monitor", "rollback", "score")  # the DAGs of a model: <kind>_<model>
MODEL_ID = re.compile(r"[A-Za-z0-9_]+")  # a file stem that makes valid, unambiguous DAG ids


@dataclass(frozen=True)
class Model:
    """A model config as the DAG files see it: its id, file, merged file content and typed config."""

    id: str
    path: Path
    merged: Mapping[str, Any]  # the file over the defaults, before any Variable or Param
    config: PipelineConfig


@dataclass(frozen=True)
class BrokenModel:
    id: str
    path: Path
    error: str


def models_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get(MODELS_DIR_ENV) or MODELS_DIR)


def dag_id(kind: str, model: str) -> str:
    return f"{kind}_{model}"


def model_of(dag_id_: str) -> str | None:
    """The model a DAG id belongs to (``retrain_wine`` -> ``wine``); None for a DAG the factory did not make."""
    return next((dag_id_.removeprefix(f"{kind}_") for kind in KINDS if dag_id_.startswith(f"{kind}_")), None)


def model_path(model: str, environ: Mapping[str, str] = os.environ) -> Path:
    return models_dir(environ) / f"{model}.json"


def discover(folder: Path) -> tuple[tuple[Model, ...], tuple[BrokenModel, ...]]:
    """Every ``*.json`` in ``folder``, loaded or with the reason it did not load (read on every parse:
    a few milliseconds per file, and an edited file shows at the next parse)."""
    models, broken = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            models.append(load_model(path))
        except ConfigError as error:
            broken.append(BrokenModel(path.stem, path, str(error)))
    return tuple(models), tuple(broken)


def load_model(path: Path) -> Model:
    if not MODEL_ID.fullmatch(path.stem):
        raise ConfigError(
            f"{path.name}: the file name is the model id in the DAG ids and may hold letters, digits and "
            f"underscores only: rename it, e.g. to {re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}.json"
        )
    merged = merged_config(path)
    try:
        config = config_from(merged, check_estimator=False)
    except ConfigError as error:
        raise ConfigError(f"{path.name}: {error}") from error
    return Model(path.stem, path, merged, config)


def models() -> tuple[Model, ...]:
    return discover(models_dir())[0]


def broken_models() -> tuple[BrokenModel, ...]:
    return discover(models_dir())[1]


def broken_report(broken: tuple[BrokenModel, ...]) -> str:
    """One paragraph per broken model file: which DAGs are missing and the config error."""
    paragraphs = [
        f"{', '.join(dag_id(kind, model.id) for kind in KINDS)} not loaded: {model.path}: {model.error}"
        for model in broken
    ]
    return f"{len(broken)} model config(s) did not load; the other models' DAGs are unaffected.\n" + "\n".join(
        paragraphs
    )
