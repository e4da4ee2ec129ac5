"""End-to-end smoke test of the host: train a tiny CNN, save it, verify it."""

from pathlib import Path

import torch

from provscan.architectures import small_cnn
from provscan.classifier_card import save_classifier
from provscan.datasets import digits_dataset, split
from provscan.training import accuracy, train_classifier


def build_cnn(path: Path) -> None:
    tr, te = split(digits_dataset(), 0.2, 0)
    model = train_classifier(small_cnn(), tr.x, tr.y, epochs=5, seed=0)
    assert accuracy(model, te.x, te.y) > 0.8
    save_classifier(model, path, "small-cnn", {}, 10, (1, 8, 8))


def test_verify_trained_cnn(shared_artifact, run_cli):
    path = shared_artifact("smoke-cnn", build_cnn)
    res = run_cli("verify", path)
    assert res.exit_code == 0, res.output
    assert "file-safety" in res.output


def test_missing_target_is_usage_error(run_cli, tmp_path):
    res = run_cli("verify", tmp_path / "nope")
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and "no such file" in res.output


def test_threads_pinned():
    assert torch.get_num_threads() == 1
