"""White-box backdoor probes for image classifiers (Neural-Cleanse-style trigger inversion and
MM-BD-style maximum margin), with conformal p-values against reference clean models."""

__version__ = "0.1.0"
