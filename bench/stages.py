"""Per-stage benchmarks, each candidate in a forked child (its own peak RSS), rounds interleaved.

- extract: ``mongo.read_window`` vs ``pd.DataFrame(list(collection.find(filter, projection)))``, same window;
- drift: ``core.drift.compute_drift`` (sampled to ``drift.max_rows``) vs the same Evidently
  ``DataDriftPreset`` on the full frames, on a stationary and a shifted pair, with verdict agreement;
- train + evaluate: split, sample, fit, score the holdout and run the gate's paired bootstrap, with the
  configured defaults vs today's (eb49517: one-core 200-tree forest, every row, the bootstrap loop).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

from bench.datasets import DAYS, END, collection_name, database, drift_pair
from bench.measure import in_child, median

BASELINE_TRAINING = {
    "estimator": "random_forest",
    "hyperparameters": {"n_estimators": 200, "max_depth": 12, "min_samples_leaf": 5, "class_weight": "balanced"},
    "max_rows": None,
}


def _config(label: str):
    from include.retraining.airflow.runtime import env_config
    from include.retraining.core.config import with_overrides

    return with_overrides(env_config(), source={"collection": collection_name(label), "database": database()})


# --- extract ------------------------------------------------------------------------------------------


def connected(source):
    """The source's collection with its cached client connected and authenticated (importing Airflow's
    MongoHook and the handshake take seconds): both candidates time the read alone."""
    from include.retraining.adapters import mongo

    docs = mongo.collection(source.conn_id, source.database, source.collection)
    docs.database.command("ping")
    return docs


def extract_read_window(label: str) -> dict:
    import pymongoarrow.api  # noqa: F401 - imported before the clock starts, like pandas for the baseline

    from include.retraining.adapters import mongo

    config = _config(label)
    connected(config.source)
    started = time.perf_counter()
    frame = mongo.read_window(config.source, config.contract, END - timedelta(days=DAYS + 1), END)
    return {"seconds": time.perf_counter() - started, "rows": len(frame)}


def extract_find_list(label: str) -> dict:
    import pandas as pd

    from include.retraining.adapters import mongo

    config = _config(label)
    source = config.source
    fields = [*config.contract.feature_names, config.contract.label.name, source.timestamp_field]
    docs = connected(source)
    started = time.perf_counter()
    query = mongo.window_filter(source, END - timedelta(days=DAYS + 1), END)
    frame = pd.DataFrame(list(docs.find(query, dict.fromkeys(fields, 1)).sort(source.timestamp_field, 1)))
    return {"seconds": time.perf_counter() - started, "rows": len(frame)}


def bench_extract(label: str, repeat: int) -> dict[str, float]:
    return _interleaved(
        f"extract.{label}",
        {"read_window": extract_read_window, "find_list": extract_find_list},
        (label,),
        repeat,
        baseline="find_list",
    )


# --- drift --------------------------------------------------------------------------------------------


def drift_check(rows: int, shifted: bool, sampled: bool) -> dict:
    import evidently.presets  # noqa: F401 - imported before the clock starts: 7 s that are not per row

    from include.retraining.core.config import load_config
    from include.retraining.core.drift import compute_drift, dataset_drifted, dataset_threshold

    config = load_config()
    current, reference = drift_pair(rows, shifted)
    settings = config.drift if sampled else replace(config.drift, max_rows=rows + 1)
    started = time.perf_counter()
    result = compute_drift(current, reference, config.contract, settings)
    seconds = time.perf_counter() - started
    verdicts = {c.column: c.drifted for c in result.columns}
    threshold = dataset_threshold(settings, len(config.contract.features))
    return {"seconds": seconds, "dataset": dataset_drifted(result.drift_share, threshold), "columns": verdicts}


def bench_drift(label: str, rows: int, repeat: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for pair, shifted in (("stationary", False), ("shifted", True)):
        runs = {"sampled": [], "evidently_full": []}
        for _ in range(repeat):
            for name, sampled in (("sampled", True), ("evidently_full", False)):
                outcome, peak, base = in_child(drift_check, rows, shifted, sampled)
                runs[name].append(outcome | {"rss": peak, "rss_growth": peak - base})
        prefix = f"drift.{label}.{pair}"
        figures |= _summary(prefix, runs, baseline="evidently_full")
        ours, theirs = runs["sampled"][0], runs["evidently_full"][0]
        agree = sum(ours["columns"][c] == theirs["columns"][c] for c in theirs["columns"])
        figures[f"{prefix}.columns_agree"] = agree / len(theirs["columns"])
        figures[f"{prefix}.dataset_agree"] = float(ours["dataset"] == theirs["dataset"])
        figures[f"{prefix}.dataset_drift"] = float(ours["dataset"])
    return figures


# --- train + evaluate -----------------------------------------------------------------------------------


def train_evaluate(rows: int, today: bool) -> dict:
    """Fit on a generated window and evaluate with the gate (the holdout scored twice: challenger, champion)."""
    from bench.baselines import loop_win_share
    from include.demo.sample_data import generate_frame
    from include.retraining.core.config import load_config, with_overrides
    from include.retraining.core.evaluation import predict, score, targets, win_share
    from include.retraining.core.training import features_and_label, fit, split_holdout, training_sample

    config = load_config()
    if today:
        config = with_overrides(config, training=BASELINE_TRAINING)
    frame = generate_frame(rows, start=END - timedelta(days=DAYS), end=END, seed=7)
    frame = frame[[*config.contract.feature_names, config.contract.label.name]]
    started = time.perf_counter()
    train, holdout = split_holdout(frame, config.contract, config.training)
    model = fit(training_sample(train, config.contract, config.training), config.contract, config.training)
    trained = time.perf_counter()
    features, label = features_and_label(holdout, config.contract)
    y = targets(config.contract.label, label)
    challenger = predict(model, features, config.contract.label)
    champion = predict(model, features, config.contract.label)  # the steady state: a model like this one
    metrics = score(y, challenger)
    score(y, champion)
    (loop_win_share if today else win_share)(y, challenger, champion, config.gate)
    done = time.perf_counter()
    return {
        "train_s": trained - started,
        "evaluate_s": done - trained,
        "seconds": done - started,
        "roc_auc": metrics[config.gate.primary_metric],
    }


TODAY_MAX_ROWS = 100_000  # above this, today's train/evaluate is measured in the DAG section only (minutes)


def bench_train_evaluate(label: str, rows: int, repeat: int) -> dict[str, float]:
    runs = {"configured": [], "today": []} if rows <= TODAY_MAX_ROWS else {"configured": []}
    for _ in range(repeat):
        for name, values in runs.items():
            outcome, peak, base = in_child(train_evaluate, rows, name == "today")
            values.append(outcome | {"rss": peak, "rss_growth": peak - base})
    figures = _summary(f"train_evaluate.{label}", runs, baseline="today" if "today" in runs else "configured")
    for name, values in runs.items():
        for part in ("train_s", "evaluate_s", "roc_auc"):
            figures[f"train_evaluate.{label}.{name}.{part}"] = median([v[part] for v in values])
    return figures


# --- shared -------------------------------------------------------------------------------------------


def _interleaved(prefix: str, candidates: dict, args: tuple, repeat: int, baseline: str) -> dict[str, float]:
    runs: dict[str, list[dict]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, function in candidates.items():
            outcome, peak, base = in_child(function, *args)
            runs[name].append(outcome | {"rss": peak, "rss_growth": peak - base})
    return _summary(prefix, runs, baseline)


def _summary(prefix: str, runs: dict[str, list[dict]], baseline: str) -> dict[str, float]:
    """Median seconds and the largest peak RSS of each candidate, and the speed-up against the baseline."""
    figures = {}
    for name, values in runs.items():
        figures[f"{prefix}.{name}.seconds"] = median([v["seconds"] for v in values])
        figures[f"{prefix}.{name}.peak_rss_mb"] = max(v["rss"] for v in values)
        figures[f"{prefix}.{name}.rss_growth_mb"] = max(v["rss_growth"] for v in values)
        if "rows" in values[0]:
            figures[f"{prefix}.{name}.rows"] = values[0]["rows"]
    for name in runs:
        if name != baseline:
            base = figures[f"{prefix}.{baseline}.seconds"]
            figures[f"{prefix}.{name}.speedup"] = base / figures[f"{prefix}.{name}.seconds"]
    return figures
