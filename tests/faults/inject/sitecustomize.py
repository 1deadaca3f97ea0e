"""Loaded by Python at start-up in the processes of a fault test's Airflow run only: the test puts this
folder first on their PYTHONPATH (tests/faults/airflow_runs.py). Installs the faults its plan names."""

from tests.faults.injection import install

install()
