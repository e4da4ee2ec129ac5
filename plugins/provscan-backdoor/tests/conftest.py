"""Shared trained fixtures: tiny CNNs on scikit-learn's digits, poisoned by provscan-poison."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

TARGET_CLASS = 3
EPOCHS = 20


def train_model(data: Path, out: Path, seed: int) -> None:
    from provscan import save_classifier
    from provscan.architectures import small_cnn
    from provscan.datasets import load_dataset
    from provscan.training import train_classifier

    ds = load_dataset(data)
    module = train_classifier(small_cnn(), ds.x, ds.y, epochs=EPOCHS, seed=seed)
    save_classifier(module, out, "small-cnn", {}, 10, (1, 8, 8))


@pytest.fixture(scope="session")
def digits_dir(shared_artifact: Callable[[str, Callable[[Path], None]], Path]) -> Path:
    def build(path: Path) -> None:
        from provscan.datasets import digits_dataset, save_dataset, split

        train, test = split(digits_dataset(), 0.2, 0)
        path.mkdir(parents=True)
        save_dataset(train, path / "train.npz")
        save_dataset(test, path / "test.npz")

    return shared_artifact("backdoor-digits", build)


@pytest.fixture(scope="session")
def poisoned_model(shared_artifact, digits_dir: Path) -> Path:
    """BadNets 10 %, 2x2 white patch, all-to-one to class 3; the secret is ``secret.json`` beside."""
    def build(path: Path) -> None:
        from provscan_poison.injectors import BadNets

        path.mkdir(parents=True)
        p = {q.name: q.default for q in BadNets.params} | {"rate": 0.1, "target": TARGET_CLASS}
        BadNets().apply(digits_dir / "train.npz", path / "train.npz", path / "secret.json", p,
                        np.random.default_rng(0))
        train_model(path / "train.npz", path / "model", seed=0)

    return shared_artifact("backdoor-badnets-s0", build) / "model"


@pytest.fixture(scope="session")
def clean_model(shared_artifact, digits_dir: Path) -> Path:
    return shared_artifact("backdoor-clean-s0",
                           lambda path: train_model(digits_dir / "train.npz", path, seed=0))


@pytest.fixture(scope="session")
def references4(shared_artifact, digits_dir: Path) -> Path:
    """Four clean models from the same recipe (seeds 100..103): enough for alpha 0.2."""
    def build(path: Path) -> None:
        path.mkdir(parents=True)
        for s in range(100, 104):
            train_model(digits_dir / "train.npz", path / f"ref-{s}", seed=s)

    return shared_artifact("backdoor-refs4", build)


@pytest.fixture
def open_model(provscan_host) -> Callable[[Path], object]:
    from provscan import OpenOptions, open_checkpoint

    def _open(path: Path) -> object:
        return open_checkpoint(provscan_host, path, OpenOptions(device="cpu")).require_target()

    return _open
