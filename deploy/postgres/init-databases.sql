-- Runs once, when the postgres service starts on an empty data volume (docker-entrypoint-initdb.d).
-- The `airflow` database is created by POSTGRES_DB; the MLflow tracking server and model registry
-- get their own database on the same server, owned by the same user (POSTGRES_USER).
CREATE DATABASE mlflow;
