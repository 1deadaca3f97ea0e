"""The domain: pure functions over typed records and frames. No I/O, no Airflow, no clients."""
