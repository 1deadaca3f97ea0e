"""A new dataset, configuration only: real public data bundled with scikit-learn goes through the commands
a person runs, then `airflow dags test` of the DAG the new model file creates, to a registered champion
with the metrics of its objective. No code is edited; each model lives in a temporary RETRAIN_MODELS_DIR.

- multiclass: digits 0-4 with string class names ("zero".."four"), ISO-string timestamps stamped in file
  order (the CSV has none), loaded with `make load-csv`;
- binary: breast cancer with 0/1 labels, epoch-millisecond timestamps and integer `_id`s;
- regression: diabetes (numeric features only), epoch-second timestamps, at a historical logical date.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import pandas as pd
import pytest

from include.demo.demo import dags_test
from include.retraining.adapters import registry
from include.retraining.airflow.models import MODELS_DIR_ENV
from include.retraining.airflow.runtime import env_config
from include.retraining.core.config import METRICS

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DIGITS = ("zero", "one", "two", "three", "four")


def digits() -> pd.DataFrame:
    from sklearn.datasets import load_digits

    data = load_digits(as_frame=True).frame
    data = data[data["target"] < len(DIGITS)].reset_index(drop=True)
    return data.assign(target=[DIGITS[t] for t in data.pop("target")])


def breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True).frame
    data.columns = [re.sub(r"\W+", "_", c).strip("_") for c in data.columns]
    return data.assign(row_id=range(1, len(data) + 1))


def diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True, scaled=False).frame


CASES = {
    "multiclass": (digits, {"TIMESTAMP": "scanned_at", "TIMESTAMP_TYPE": "iso_string"}, "macro_f1"),
    "binary": (breast_cancer, {"TIMESTAMP": "seen_at", "TIMESTAMP_TYPE": "epoch_millis", "ID": "row_id"}, "roc_auc"),
    "regression": (
        diabetes,
        {"TIMESTAMP": "visit", "TIMESTAMP_TYPE": "epoch_seconds", "END": "2014-03-01", "DAYS": "60"},
        "rmse",
    ),
}


def make(*words: str, env: dict[str, str]) -> str:
    done = subprocess.run(["make", *words], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"make {' '.join(words)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.parametrize("objective", list(CASES))
def test_a_csv_onboarded_by_make_becomes_a_champion_through_airflow_dags_test(objective, tmp_path):
    frame, load_options, metric = CASES[objective]
    model = f"onboard_{objective}_{uuid.uuid4().hex[:6]}"
    database = f"e2e_{model}"
    csv = tmp_path / f"{objective}.csv"
    frame().to_csv(csv, index=False)
    env = {**os.environ, MODELS_DIR_ENV: str(tmp_path / "models"), "RETRAIN_TASK_RETRIES": "0"}
    options = [f"{key}={value}" for key, value in load_options.items()]

    make("load-csv", f"CSV={csv}", f"DB={database}", f"COLLECTION={model}", *options, env=env)
    printed = make("onboard", f"DB={database}", f"COLLECTION={model}", "LABEL=target", "CONN=mongo_admin", env=env)
    model_file = tmp_path / "models" / f"{model}.json"
    config = env_config(env, model=model)  # the file over the defaults, then the stack's Variables, as a run
    assert config.contract.label.objective == objective
    assert config.gate.primary_metric == metric
    assert config.source.timestamp_type == load_options["TIMESTAMP_TYPE"]
    # the administrator's setup step for the new collection (the pipeline's user may only read what it grants)
    subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-m", "include.retraining.adapters.mongo_setup", "--model-file", model_file],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    command = re.search(rf"next: airflow dags test (retrain_{model}) (\S+)", printed)
    assert command, printed

    log = tmp_path / "dags-test.log"
    _, state = dags_test(command[1], log, env=env, logical_date=command[2])

    assert state == "success", log.read_text()[-4000:]
    champion = registry.champion(config.mlflow, config.model_name)
    assert champion is not None
    assert set(champion.holdout_metrics) == set(METRICS[objective])
    print(f"{objective}: {metric} {champion.holdout_metrics[metric]:.4f} ({command[0]})")
