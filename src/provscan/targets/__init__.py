"""Targets: what a detector may do with a model, and how checkpoints are opened safely."""

from provscan.targets.base import (
    ClassifierTarget,
    EncoderTarget,
    FilesTarget,
    LMTarget,
    OpenOptions,
    ResolvedLocation,
    Target,
    TextClassifierTarget,
)

__all__ = ["ClassifierTarget", "EncoderTarget", "FilesTarget", "LMTarget", "OpenOptions", "ResolvedLocation", "Target", "TextClassifierTarget"]
