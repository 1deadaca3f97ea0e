"""The local stack without Docker: MongoDB (SecantusDB), S3 (moto), MLflow, an SMTP sink, and on request
a full Airflow. One module per service; `supervisor` holds what they share; `__main__` is the command."""
