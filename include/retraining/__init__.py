"""Scheduled and drift-triggered retraining, in four layers (each imports only the ones above it):

- ``core``: pure functions over typed records and frames (config, contract, drift, training, the gate);
- ``adapters``: one module per outside system (MongoDB, object storage, MLflow, mail);
- ``stages``: one function per Airflow task, composing the core and the adapters;
- ``airflow``: the glue the DAGs use (the task adapter, the Params, config resolution, DAG defaults).
"""

import os

# scikit-learn's OpenMP threads (gradient boosting) spin while they wait by default: on a machine whose
# cores are shared (an Airflow worker running other tasks) a 200k-row fit then took 49 s on 2 threads
# instead of 3-6 s with passive waiting (12 s on one thread). OpenMP reads this once, when scikit-learn
# first loads, so it is set here, before any module of the package imports scikit-learn.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
