"""MLflow models: log the trained pipeline once per run, and load a model only as it was registered
(its recorded sha256, and skops types from the project's allowlist, never a list read from the artifact)."""

from __future__ import annotations

import hashlib
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from include.retraining.adapters.registry.runs import client, download, fluent
from include.retraining.core.config import MlflowConfig
from include.retraining.core.records import Snapshot

if TYPE_CHECKING:
    import pandas as pd


MODEL_ARTIFACT = "model"
REFIT_ARTIFACT = "model_refit"  # the challenger fitted again on training + holdout after the gate passed


MODEL_FILE = "model.skops"  # what mlflow.sklearn writes with skops serialisation


# The types skops may load beyond its defaults: exactly what the estimators of core/training.py need
# (tests/unit/test_training.py keeps this in step). Never read from an artifact: whoever can write the
# bucket could otherwise name any callable and have it run when the model loads.
TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # a fitted HistGradientBoosting keeps functools.partial(check_array); skops still checks the wrapped
    # function's own type, so trusting partial alone lets no other callable in
    "functools.partial",
    "sklearn.utils.validation.check_array",
)


class UntrustedModelError(RuntimeError):
    """A model artifact changed after registration or holds types outside the allowlist."""


def log_training(
    mlflow_config: MlflowConfig,
    run_id: str,
    model: Any,
    train: pd.DataFrame,
    snapshot: Snapshot,
    label: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    name: str = MODEL_ARTIFACT,
) -> str:
    """Log parameters, metrics, the snapshot's lineage and the model (as ``name``); return the model's uri.

    Call ``logged_model`` first: a retried task must not log a second model into the run."""
    from mlflow.models import infer_signature
    from sklearn.base import is_classifier

    mlflow = fluent(mlflow_config)
    features = train.drop(columns=[label])
    with mlflow.start_run(run_id=run_id), quiet_skops_lookups():
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        dataset = mlflow.data.from_pandas(
            train, source=snapshot.uri, targets=label, name=f"snapshot-{snapshot.content_hash[:12]}"
        )
        mlflow.log_input(dataset, context="training")
        head = features.head(100)  # a classifier's signature is its probabilities, a regressor's its predictions
        signature = infer_signature(
            features, model.predict_proba(head) if is_classifier(model) else model.predict(head)
        )
        info = mlflow.sklearn.log_model(
            model,
            name=name,
            signature=signature,
            input_example=features.head(5),
            skops_trusted_types=list(TRUSTED_TYPES),
            pip_requirements=model_requirements(),
        )
    return info.model_uri


def model_requirements() -> list[str]:
    """What serving the model needs, pinned to what trained it.

    Given explicitly because MLflow's inference re-imports the model in a subprocess (about 12 s per
    training run) only to find these same packages.
    """
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("scikit-learn", "skops", "pandas", "numpy", "scipy")]


def logged_model(mlflow_config: MlflowConfig, run_id: str, name: str = MODEL_ARTIFACT) -> str | None:
    """The uri of the model ``name`` this MLflow run already logged (READY), if any."""
    mlflow_client = client(mlflow_config)
    experiment_id = mlflow_client.get_run(run_id).info.experiment_id
    found = mlflow_client.search_logged_models(
        [experiment_id], filter_string=f"source_run_id = '{run_id}' AND name = '{name}'"
    )
    ready = [model for model in found if str(model.status) == "READY"]
    return ready[0].model_uri if ready else None


def model_digest(mlflow_config: MlflowConfig, model_uri: str) -> str:
    """sha256 of the stored model file, recorded at registration and checked before every load."""
    with _downloaded(mlflow_config, model_uri) as model_file:
        return hashlib.sha256(model_file.read_bytes()).hexdigest()


def load_model(mlflow_config: MlflowConfig, model_uri: str, sha256: str | None) -> Any:
    """Load a model we registered: the file must still have its recorded hash, and skops may only
    instantiate the project's allowlisted types."""
    skops_io = quiet_skops_io()

    if not sha256:
        raise UntrustedModelError(
            f"{model_uri} has no recorded model_sha256: only versions registered by this pipeline load; "
            "retrain (force_retrain) to register a verifiable version"
        )
    with _downloaded(mlflow_config, model_uri) as model_file:
        data = model_file.read_bytes()
    if (actual := hashlib.sha256(data).hexdigest()) != sha256:
        raise UntrustedModelError(
            f"{model_uri}: {MODEL_FILE} has sha256 {actual[:12]}..., registered {sha256[:12]}...: "
            "the artifact changed after registration; refusing to load it"
        )
    with quiet_skops_lookups():
        untrusted = sorted(set(skops_io.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
        if untrusted:
            raise UntrustedModelError(f"{model_uri} holds types outside the allowlist {untrusted}; refusing to load it")
        return skops_io.loads(data, trusted=list(TRUSTED_TYPES))


@contextmanager
def _downloaded(mlflow_config: MlflowConfig, model_uri: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield download(mlflow_config, model_uri, Path(tmp)) / MODEL_FILE


def quiet_skops_io() -> ModuleType:
    """``skops.io``, imported without noise: on import it looks each scipy ufunc up in every loaded module,
    and each Airflow module answers with a deprecation warning (1,160 lines at the top of a task log)."""
    with quiet_skops_lookups():
        import skops.io

    return skops.io


@contextmanager
def quiet_skops_lookups() -> Iterator[None]:
    """skops looks every function of a model up in every loaded module (``skops.io._utils.whichmodule``);
    Airflow's deprecated-import shims answer each lookup with a FutureWarning, some 1,100 lines that
    would bury the task log (and the gate's sentence) under noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.io\._utils")
        yield
