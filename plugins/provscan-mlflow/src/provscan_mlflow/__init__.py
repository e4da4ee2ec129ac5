"""provscan-mlflow: scan MLflow registry versions and gate them through MLflow's webhooks."""

__version__ = "0.1.0"
