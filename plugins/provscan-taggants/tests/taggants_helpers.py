"""Shared builders for the taggants tests (tiny real models trained on scikit-learn digits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from provscan import save_classifier
from provscan.architectures import mlp
from provscan.datasets import ImageDataset, digits_dataset, split
from provscan.training import train_classifier

MLP_CONFIG = {"in_channels": 1, "num_classes": 10, "image_size": 8, "hidden": 128}


def digits_split() -> tuple[ImageDataset, ImageDataset]:
    return split(digits_dataset(), 0.2, seed=0)


def train_mlp_dir(x: np.ndarray, y: np.ndarray, out: Path, seed: int, epochs: int = 30) -> Path:
    """A registered-factory MLP trained from scratch and saved as a provscan checkpoint."""
    torch.manual_seed(seed)
    module = train_classifier(mlp(**MLP_CONFIG), x, y, epochs=epochs, seed=seed)
    return save_classifier(module, out, "mlp", MLP_CONFIG, 10, (1, 8, 8))
