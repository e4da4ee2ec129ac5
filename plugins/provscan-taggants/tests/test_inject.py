"""`provscan inject taggants`: outputs, determinism, secrets kept apart, bad inputs."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from provscan_taggants.secret import read_secret

from provscan import ProvscanError
from provscan.datasets import ImageDataset, load_dataset, save_dataset

sys.path.insert(0, str(Path(__file__).parent))
from taggants_helpers import digits_split  # noqa: E402

FAST = ["--steps", "4", "--surrogate-epochs", "1", "--keys", "4"]


def _small_npz(tmp: Path, n: int = 300) -> Path:
    train, _ = digits_split()
    path = tmp / "train.npz"
    save_dataset(train.replace(train.x[:n], train.y[:n]), path)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_inject_is_deterministic_and_leaves_input_alone(tmp_path: Path, run_cli) -> None:
    data = _small_npz(tmp_path)
    before = _sha(data)
    outs = []
    for i, seed in enumerate((5, 5, 6)):
        out, sec = tmp_path / f"p{i}.npz", tmp_path / f"s{i}.json"
        res = run_cli("inject", "taggants", data, "--out", out, "--secret", sec, "--seed", seed, *FAST, "--json")
        assert res.exit_code == 0, res.output
        summary = json.loads(res.output)
        assert "key_labels" not in summary and "keys_data" not in summary  # nothing secret printed
        assert summary["modified"] == 32 and summary["stealth"]["linf_255"] <= 96 + 1e-3
        assert summary["stealth"]["psnr_db"] > 10
        outs.append((out, sec))
    assert _sha(data) == before
    assert _sha(outs[0][0]) == _sha(outs[1][0])  # same seed: byte-identical protected data
    assert _sha(outs[0][0]) != _sha(outs[2][0])
    s0, s1 = read_secret(outs[0][1]), read_secret(outs[1][1])
    assert np.array_equal(s0.keys, s1.keys) and np.array_equal(s0.labels, s1.labels)
    orig, prot = load_dataset(data), load_dataset(outs[0][0])
    assert np.array_equal(orig.y, prot.y)  # clean-label: no label changes
    changed = np.flatnonzero(np.abs(orig.x - prot.x).reshape(len(orig.y), -1).max(1) > 0)
    assert 0 < len(changed) <= 32
    assert set(orig.y[changed].tolist()) <= set(s0.labels.tolist())  # only key classes touched


def test_watermark_mode_relabels_and_says_so(tmp_path: Path, run_cli) -> None:
    data = _small_npz(tmp_path)
    res = run_cli("inject", "taggants", data, "--out", tmp_path / "w.npz", "--secret",
                  tmp_path / "w.json", "--mode", "watermark", "--keys", "5", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["mode"] == "watermark" and "visible" in summary["warning"]
    assert read_secret(tmp_path / "w.json").mode == "watermark"


def test_image_folder_round_trip_and_secret_outside(tmp_path: Path, run_cli) -> None:
    train, _ = digits_split()
    folder = tmp_path / "imgs"
    save_dataset(ImageDataset(train.x[:120], train.y[:120], [str(i) for i in range(10)], "folder"),
                 folder)
    out = tmp_path / "prot"
    res = run_cli("inject", "taggants", folder, "--out", out, "--secret", out / "secret.json", *FAST)
    assert res.exit_code == 2 and not out.exists()
    res = run_cli("inject", "taggants", folder, "--out", out, "--secret", tmp_path / "s.json", *FAST)
    assert res.exit_code == 0, res.output
    assert load_dataset(out).x.shape == (120, 1, 8, 8)
    assert not any(p.suffix == ".json" for p in out.rglob("*"))
    assert read_secret(tmp_path / "s.json").protected_sha256


@pytest.mark.parametrize("args, needle", [
    (["--budget", "0.9"], "budget"),
    (["--eps", "0"], "eps"),
    (["--mode", "nope"], "mode"),
    (["--surrogate", "nope"], "surrogate"),
])
def test_bad_options_exit_2_and_write_nothing(tmp_path: Path, run_cli, args, needle) -> None:
    data = _small_npz(tmp_path)
    out, sec = tmp_path / "p.npz", tmp_path / "s.json"
    res = run_cli("inject", "taggants", data, "--out", out, "--secret", sec, *FAST, *args)
    assert res.exit_code == 2, res.output
    assert needle in res.output and len(res.output.strip().splitlines()) == 1
    assert not out.exists() and not sec.exists()


def test_corrupted_secret_is_refused(tmp_path: Path, run_cli) -> None:
    data = _small_npz(tmp_path)
    sec = tmp_path / "s.json"
    assert run_cli("inject", "taggants", data, "--out", tmp_path / "p.npz", "--secret", sec,
                   *FAST).exit_code == 0
    body = json.loads(sec.read_text())
    body["labels"][0] = (body["labels"][0] + 1) % 10
    bad = tmp_path / "edited.json"
    bad.write_text(json.dumps(body))
    with pytest.raises(ProvscanError, match="checksum"):
        read_secret(bad)
    trunc = tmp_path / "trunc.json"
    trunc.write_text(sec.read_text()[:200])
    with pytest.raises(ProvscanError, match="JSON"):
        read_secret(trunc)
