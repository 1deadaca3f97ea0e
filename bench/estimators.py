"""Which estimator for a large window: holdout quality and cost of each candidate, measured side by side.

Every candidate is fitted on the same stratified split of the same synthetic window and scored on the
same holdout (the gate's primary metric, ROC-AUC); each fit runs in a fresh process so its peak RSS is
its own. Today's default (200-tree RandomForest, depth 12, one core) is the baseline of the ratios.

    .venv/bin/python -m bench.estimators --rows 1000000 [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import time

from bench.measure import in_child

RF = {"n_estimators": 200, "max_depth": 12, "min_samples_leaf": 5, "class_weight": "balanced"}
HGB_FIRST_TRY = {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 100}
HGB = {  # the configured default: early stopping always on (scikit-learn's "auto" skips it up to 10k rows)
    "max_iter": 400,
    "learning_rate": 0.05,
    "max_depth": 4,
    "min_samples_leaf": 50,
    "early_stopping": True,
    "class_weight": "balanced",
}
CANDIDATES = {  # name -> (estimator, hyperparameters, training-row cap)
    "rf_1core": ("random_forest", {**RF, "n_jobs": 1}, None),  # today's default
    "rf_all_cores": ("random_forest", RF, None),
    "rf_all_cores_cap200k": ("random_forest", RF, 200_000),
    "hgb_first_try": ("gradient_boosting", HGB_FIRST_TRY, None),
    "hgb": ("gradient_boosting", HGB, None),
    "hgb_cap200k": ("gradient_boosting", HGB, 200_000),  # the configured default
}


def fit_and_score(rows: int, estimator: str, hyperparameters: dict, cap: int | None) -> dict:
    from sklearn.metrics import roc_auc_score

    from bench.datasets import END
    from include.demo.sample_data import generate_frame
    from include.retraining.core.config import load_config, with_overrides
    from include.retraining.core.training import features_and_label, fit, split_holdout, training_sample

    config = with_overrides(
        load_config(), training={"estimator": estimator, "hyperparameters": hyperparameters, "max_rows": cap}
    )
    frame = generate_frame(rows, start=END.replace(day=1), end=END, seed=7)
    frame = frame[[*config.contract.feature_names, "Response"]]
    train, holdout = split_holdout(frame, config.contract, config.training)
    train = training_sample(train, config.contract, config.training)
    started = time.perf_counter()
    model = fit(train, config.contract, config.training)
    fit_seconds = time.perf_counter() - started
    features, y = features_and_label(holdout, config.contract)
    started = time.perf_counter()
    scores = model.predict_proba(features)[:, 1]
    predict_seconds = time.perf_counter() - started
    return {
        "fit_s": fit_seconds,
        "predict_s": predict_seconds,
        "roc_auc": float(roc_auc_score(y, scores)),
        "model_mb": len(pickle.dumps(model)) / 1e6,
        "rows_train": len(train),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=list(CANDIDATES))
    args = parser.parse_args()
    results: dict[str, list[dict]] = {name: [] for name in args.only}
    for _ in range(args.repeat):  # interleaved: one round of every candidate, then the next round
        for name in args.only:
            estimator, hyperparameters, cap = CANDIDATES[name]
            outcome, rss_mb, _ = in_child(fit_and_score, args.rows, estimator, hyperparameters, cap)
            results[name].append(outcome | {"rss_mb": rss_mb})
            print(name, json.dumps(results[name][-1]), flush=True)
    base = statistics.median(r["fit_s"] for r in results.get("rf_1core", results[args.only[0]]))
    print(f"\n{'candidate':<24}{'fit s':>8}{'x faster':>10}{'roc_auc':>9}{'RSS MB':>8}{'model MB':>10}")
    for name, runs in results.items():
        fit_s = statistics.median(r["fit_s"] for r in runs)
        auc = statistics.median(r["roc_auc"] for r in runs)
        rss = max(r["rss_mb"] for r in runs)
        size = runs[0]["model_mb"]
        print(f"{name:<24}{fit_s:>8.1f}{base / fit_s:>10.2f}{auc:>9.4f}{rss:>8.0f}{size:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
