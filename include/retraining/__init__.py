"""Scheduled and drift-triggered retraining, in four layers (each imports only the ones above it):

- ``core``: pure functions over typed records and frames (config, contract, drift, training, the gate);
- ``adapters``: one module per outside system (MongoDB, object storage, MLflow, mail);
- ``stages``: one function per Airflow task, composing the core and the adapters;
- ``airflow``: the glue the DAGs use (the task adapter, the Params, config resolution, DAG defaults).
"""
