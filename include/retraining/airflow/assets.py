"""The Assets a model's DAGs produce and consume, named after the model (imported at DAG parse time).

``champion_<model>``: the retrain DAG's ``promote`` task emits an event on every success (a promotion or a
refusal, both after a fresh gate); the model's score DAG is scheduled on it, so a new champion re-scores
the open window and a challenger that lost leaves a run that only scores what arrived since.
"""

from __future__ import annotations

from typing import Any


def model_asset(kind: str, model: str) -> Any:
    from airflow.sdk import Asset

    return Asset(name=f"{kind}_{model}", group="model")
