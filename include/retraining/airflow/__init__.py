"""The Airflow glue: ``task.run_stage`` (every task's body), ``params`` (the trigger form, declared once),
``runtime`` (a task's config and run identity), ``dag_defaults``. What the DAGs import at parse time
stays standard-library only."""
