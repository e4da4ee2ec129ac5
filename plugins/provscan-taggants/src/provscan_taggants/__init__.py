"""Data taggants for provscan: protect a dataset with secret keys, then test whether a model was
trained on it with an exact p-value (after Bouaziz et al., "Data Taggants", arXiv 2410.09101)."""

__version__ = "0.1.0"
