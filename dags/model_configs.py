"""The model configs that did not load, as this file's import error (Airflow lists it under "DAG Import
Errors" with the config error): each names the DAG ids it would have made and what to fix.

Why a file of its own: an import error marks every DAG of its file stale, so reported from
``retrain.py`` (or a DAG whose ``validate()`` raises there) it would take the healthy models' DAGs
down with it; raised here, only the broken model's DAGs are missing. With every config loading,
this file defines no DAG (Airflow's `dag` check in safe mode still reads it).
"""

from __future__ import annotations

from include.retraining.airflow.models import broken_models, broken_report
from include.retraining.core.config import ConfigError

if broken := broken_models():
    raise ConfigError(broken_report(broken))
