"""Batch scoring, one ``score_<model>`` DAG per model config: the champion's predictions for the documents
it never saw, written to MongoDB's ``scoring.collection`` once per (document, version).

Scheduled on the model's ``champion_<model>`` Asset, which the retrain DAG's ``promote`` emits (a new
champion re-scores the open window), or nightly at ``SCORE_SCHEDULE`` (default 04:00 UTC, after the
02:00 retrain), whichever comes first. Also ``airflow dags test score_<model>`` or the UI's Trigger.
Performance drift reads these predictions: what was served, not a re-scoring, wherever there is one.
"""

from __future__ import annotations

import os

from airflow.sdk import CronTriggerTimetable, dag
from airflow.sdk.definitions.timetables.assets import AssetOrTimeSchedule

from include.retraining.airflow.assets import model_asset
from include.retraining.airflow.dag_defaults import dag_defaults
from include.retraining.airflow.models import Model, dag_id, models
from include.retraining.airflow.task import stage_tasks
from include.retraining.core.graph import SCORE


def score_dag(model: Model):
    nightly = CronTriggerTimetable(os.environ.get("SCORE_SCHEDULE", "0 4 * * *"), timezone="UTC")

    @dag(
        dag_id=dag_id("score", model.id),
        schedule=AssetOrTimeSchedule(timetable=nightly, assets=model_asset("champion", model.id)),
        **dag_defaults(model.config.start_date),
        tags=["mlops", "scoring", "mlflow", model.id],
        doc_md=__doc__,
    )
    def score():
        tasks = stage_tasks(SCORE, model.id)
        tasks.score(tasks.resolve_config())

    return score()


for _model in models():
    score_dag(_model)
