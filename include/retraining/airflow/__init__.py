"""The Airflow glue: ``task`` (the DAGs' tasks, made from the stage graph, and ``run_stage``, every stage
task's body), ``params`` (the trigger form, declared once), ``runtime`` (a task's config and run
identity), ``dag_defaults``. What the DAGs import at parse time is the standard library and the core's
config, records and graph: no pandas, scikit-learn, Evidently or MLflow."""
