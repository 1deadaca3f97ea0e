"""One module per outside system, each the only place that system is touched: ``mongo``, ``storage``
(S3 through the provider's S3Hook), ``registry`` (MLflow tracking and registry), ``mail`` (SMTP)."""
