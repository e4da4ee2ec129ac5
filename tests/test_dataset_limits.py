"""Injector inputs are validated before anything large is allocated: dense labels 0..K-1, a cap
on K, finite values, a cap on the arrays an .npz declares."""

import resource

import numpy as np
import pytest

from provscan.datasets import ImageDataset, check_labels, load_dataset
from provscan.errors import ProvscanError


def _npz(path, x, y):
    np.savez(path, x=x, y=y)
    return path


def test_one_kilobyte_npz_with_a_huge_label_is_one_line_exit_2_without_allocating(tmp_path, run_cli):
    data = _npz(tmp_path / "tiny.npz", np.zeros((2, 8, 8), np.uint8), np.array([0, 10**12]))
    assert data.stat().st_size < 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = run_cli("inject", "badnets", data, "--out", tmp_path / "o.npz", "--secret", tmp_path / "s.json")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and "PROVSCAN_MAX_CLASSES" in res.output, res.output
    assert grown_kib < 512 * 1024  # nowhere near the 7.5 GB of a list of 10**12 class names
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "s.json").exists()


@pytest.mark.parametrize(("x", "y", "words"), [
    (np.zeros((3, 8, 8), np.uint8), np.array([0, 2, 2]), "dense range 0..2, but class 1"),
    (np.zeros((2, 8, 8), np.uint8), np.array([0, -1]), "non-negative"),
    (np.zeros((2, 8, 8), np.uint8), np.array([0.0, 1.0]), "1-D integer"),
    (np.zeros((2, 8, 8), np.uint8), np.array([[0], [1]]), "1-D integer"),
    (np.full((2, 8, 8), np.nan, np.float32), np.array([0, 1]), "finite"),
    (np.full((2, 8, 8), np.inf, np.float32), np.array([0, 1]), "finite"),
    (np.full((2, 8, 8), 2.0, np.float32), np.array([0, 1]), "[0, 1]"),
    (np.zeros((2, 8, 8), np.complex64), np.array([0, 1]), "uint8 or float"),
])
def test_malformed_inputs_are_one_line_errors(tmp_path, x, y, words):
    with pytest.raises(ProvscanError) as info:
        load_dataset(_npz(tmp_path / "d.npz", x, y))
    assert words in str(info.value) and "\n" not in str(info.value)


def test_class_and_size_caps_are_settings(tmp_path, monkeypatch):
    data = _npz(tmp_path / "d.npz", np.zeros((20, 8, 8), np.uint8), np.arange(20) % 10)
    assert load_dataset(data).num_classes == 10
    monkeypatch.setenv("PROVSCAN_MAX_CLASSES", "5")
    with pytest.raises(ProvscanError, match="10 classes is more than the limit of 5"):
        load_dataset(data)
    monkeypatch.delenv("PROVSCAN_MAX_CLASSES")
    monkeypatch.setenv("PROVSCAN_MAX_DATASET_BYTES", "1000")
    with pytest.raises(ProvscanError, match="would take 1440 bytes, more than the limit of 1000"):
        load_dataset(data)


def test_declared_size_is_checked_before_decompressing(tmp_path, monkeypatch):
    """A compressed npz whose x would decode to 80 MB is refused from its header alone."""
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((10_000, 1, 80, 100), np.uint8), y=np.zeros(10_000, np.int64))
    assert path.stat().st_size < 1024 * 1024
    monkeypatch.setenv("PROVSCAN_MAX_DATASET_BYTES", str(8 * 1024 * 1024))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ProvscanError, match="more than the limit"):
        load_dataset(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 40 * 1024


def test_in_memory_datasets_check_labels_too():
    with pytest.raises(ProvscanError, match="PROVSCAN_MAX_CLASSES"):
        ImageDataset(np.zeros((2, 1, 2, 2), np.float32), np.array([0, 10**12]))
    with pytest.raises(ProvscanError, match="outside 0..1"):
        ImageDataset(np.zeros((2, 1, 2, 2), np.float32), np.array([0, 5]), classes=["a", "b"])
    # a subset (a split) may miss classes: density is required of inputs read from disk only
    assert check_labels(np.array([0, 3]), "subset", dense=False) == 4
