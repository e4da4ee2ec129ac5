"""The one open path: digest, safety verdict and load are about the same bytes.

A file swapped or rewritten between the digest and the end of the load (here by an opener that
runs first and changes the checkpoint under the built-in loader's feet) must leave the scan
inconclusive, never certified under the digest taken before the change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import provscan
from provscan.architectures import small_cnn
from provscan.checkpoint import check_unchanged, open_checkpoint, pin_files
from provscan.classifier_card import save_classifier
from provscan.digest import compute_manifest
from provscan.errors import EXIT_INCONCLUSIVE
from provscan.evidence import Decision
from provscan.policy import Policy
from provscan.scan import Scan, run_scan
from provscan.targets import OpenOptions

CPU = OpenOptions(device="cpu")


def _model(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_classifier(small_cnn(width=4, hidden=8), path, "small-cnn",
                           {"width": 4, "hidden": 8}, 10, (1, 8, 8))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return _model(tmp_path / "cnn", 0)


def _swap_by_rename(model: Path, other: Path) -> None:
    """Replace the weights with another model's (a new inode, same name)."""
    os.replace(other / "model.safetensors", model / "model.safetensors")


def _rewrite_in_place(model: Path) -> None:
    """Flip bytes near the end of the weights, same size, same inode, mtime put back."""
    weights = model / "model.safetensors"
    st = weights.stat()
    with open(weights, "r+b") as f:
        f.seek(st.st_size - 8)
        tail = f.read(8)
        f.seek(st.st_size - 8)
        f.write(bytes(b ^ 0x40 for b in tail))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert weights.stat().st_size == st.st_size


class Saboteur:
    """An opener asked before the built-in ones: it changes the files, then lets them load."""

    def __init__(self, change) -> None:
        self.change = change
        self.calls = 0

    @provscan.hookimpl
    def open_target(self, location, options):
        self.calls += 1
        self.change(Path(location))
        return None


@pytest.mark.parametrize("how", ["rename", "in-place"])
def test_change_between_digest_and_load_is_never_certified(register_plugin, provscan_host,
                                                            model_dir, tmp_path, how):
    other = _model(tmp_path / "other", 1)
    before = compute_manifest(model_dir).root_sha256
    change = (lambda m: _swap_by_rename(m, other)) if how == "rename" else _rewrite_in_place
    saboteur = Saboteur(change)
    register_plugin(saboteur)
    opened = open_checkpoint(provscan_host, model_dir, CPU)
    assert saboteur.calls == 1
    assert opened.manifest.root_sha256 == before  # the digest names the bytes before the change
    assert opened.target is None and opened.changed
    assert "changed while it was being opened" in opened.load_error


def test_scan_of_a_changed_checkpoint_is_inconclusive(register_plugin, provscan_host, model_dir):
    register_plugin(Saboteur(_rewrite_in_place))
    result = run_scan(provscan_host, Scan(str(model_dir), [], {}, 0, CPU, Policy()))
    ev = next(e for e in result.evidence if e.detector == "file-safety")
    assert ev.decision == Decision.INCONCLUSIVE and "changed" in ev.claim().summary
    assert result.exit_code == EXIT_INCONCLUSIVE and result.verdict.status != "pass"


def test_unchanged_checkpoint_loads_with_its_host(provscan_host, model_dir):
    opened = open_checkpoint(provscan_host, model_dir, CPU)
    assert opened.changed is None and opened.load_error is None
    assert opened.target.host is provscan_host and opened.target.manifest is opened.manifest
    assert opened.manifest.root_sha256 == compute_manifest(model_dir).root_sha256


def test_recheck_rehashes_when_the_identity_looks_the_same(model_dir):
    """Timestamps are coarse on some file systems: the re-hash catches what stat cannot."""
    manifest = compute_manifest(model_dir)
    _rewrite_in_place(model_dir)
    pins = pin_files(model_dir)  # identity taken after the change: stat sees nothing
    assert "content differs" in check_unchanged(model_dir, pins, manifest)
    assert check_unchanged(model_dir, pins, compute_manifest(model_dir)) is None


def test_recheck_sees_added_and_removed_files(model_dir):
    manifest, pins = compute_manifest(model_dir), pin_files(model_dir)
    (model_dir / "extra.json").write_text("{}")
    assert "added" in check_unchanged(model_dir, pins, manifest)
    (model_dir / "extra.json").unlink()
    assert check_unchanged(model_dir, pins, manifest) is None
