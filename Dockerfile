# syntax=docker/dockerfile:1
# The Airflow image for docker-compose.yaml (and any other deployment of the official image):
# apache/airflow plus this project's pinned requirements and code.
#
#   docker compose build            # or: docker build -t airflow-retraining:3.3.2 .
#
# Astro CLI users: `astro dev start` builds this file on top of an Astro Runtime image instead.
# Replace everything below with a single line naming the Astro Runtime 3.3 image for Airflow 3.3.2
# on Python 3.12 (see Astronomer's Runtime release notes for the tag):
#     FROM astrocrpublic.azurecr.io/runtime:<3.3 runtime tag>
# Astro Runtime copies the project and installs requirements.txt itself, puts the project root on
# the Python path (so `include.retraining` imports), and `astro dev start` applies
# airflow_settings.yaml natively.
FROM apache/airflow:3.3.2-python3.12

# Dependencies first (cached until requirements.txt changes). Installed as the airflow user, as the
# image requires; every line of requirements.txt is pinned, and repeating the image's own Airflow
# version makes pip fail loudly if requirements.txt ever asks for a different one.
USER airflow
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/airflow/requirements.txt

# The project: DAGs, plugins, the library, and the settings applied by the compose airflow-init job.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 airflow_settings.yaml /opt/airflow/airflow_settings.yaml
COPY --chown=airflow:0 scripts/apply_settings.py /opt/airflow/scripts/apply_settings.py

# `import include.retraining` (DAGs, plugins, the seeder CLI) resolves from the project root.
ENV PYTHONPATH=/opt/airflow

# The commit the image was built from, recorded on every MLflow run as code_version
# (`GIT_SHA=$(git rev-parse HEAD) docker compose build`; the image has no .git to ask).
ARG GIT_SHA=""
ENV GIT_SHA=${GIT_SHA}

USER airflow
