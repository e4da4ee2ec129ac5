"""Injectors: what they write, what they never touch, and how they refuse bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from provscan_poison.commands import poison
from provscan_poison.injectors import BadNets, Blended, CleanLabel
from provscan_poison.triggers import apply_trigger, load_secret, triggered_labels

from provscan import ProvscanError
from provscan.datasets import ImageDataset, digits_dataset, load_dataset, save_dataset


def tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted([path] if path.is_file() else path.rglob("*")):
        if f.is_file():
            h.update(str(f).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture
def digits_npz(tmp_path: Path) -> Path:
    ds = digits_dataset()
    sub = ds.replace(ds.x[:300], ds.y[:300])
    save_dataset(sub, tmp_path / "digits.npz")
    return tmp_path / "digits.npz"


@pytest.fixture
def digits_folder(tmp_path: Path) -> Path:
    ds = digits_dataset()
    sub = ImageDataset(ds.x[:80], ds.y[:80], [f"c{i}" for i in range(10)], "folder", "NCHW")
    save_dataset(sub, tmp_path / "folder")
    return tmp_path / "folder"


def params(cls: type, **over: object) -> dict:
    p = {q.name: q.default for q in cls.params}
    p.update(over)
    return p


def test_badnets_npz_writes_dataset_and_secret_and_keeps_input(digits_npz: Path, tmp_path: Path) -> None:
    before = tree_digest(digits_npz)
    out, secret = tmp_path / "out" / "bad.npz", tmp_path / "bad.secret.json"
    summary = BadNets().apply(digits_npz, out, secret, params(BadNets, rate=0.1, target=3),
                              np.random.default_rng(1))
    assert tree_digest(digits_npz) == before
    src, new, sec = load_dataset(digits_npz), load_dataset(out), load_secret(secret)
    idx = np.asarray(sec["poisoned_indices"])
    eligible = int((src.y != 3).sum())
    assert len(idx) == summary["n_poisoned"] == round(0.1 * eligible)
    assert (src.y[idx] != 3).all() and (new.y[idx] == 3).all()
    untouched = np.setdiff1d(np.arange(len(src.y)), idx)
    np.testing.assert_array_equal(new.y[untouched], src.y[untouched])
    np.testing.assert_allclose(new.x[untouched], src.x[untouched])
    np.testing.assert_allclose(new.x[idx][:, 0, 6:, 6:], 1.0)  # the white 2x2 patch
    np.testing.assert_allclose(new.x[idx], apply_trigger(src.x[idx], sec), atol=1e-6)
    assert sec["target"] == 3 and sec["source"]["sha256"] == hashlib.sha256(digits_npz.read_bytes()).hexdigest()
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())


def test_same_seed_same_output(digits_npz: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        BadNets().apply(digits_npz, tmp_path / f"{name}.npz", tmp_path / f"{name}.json",
                        params(BadNets), np.random.default_rng(7))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_all_to_all_shifts_labels(digits_npz: Path, tmp_path: Path) -> None:
    Blended().apply(digits_npz, tmp_path / "o.npz", tmp_path / "s.json",
                    params(Blended, mode="all-to-all", rate=0.2), np.random.default_rng(0))
    src, new, sec = load_dataset(digits_npz), load_dataset(tmp_path / "o.npz"), load_secret(tmp_path / "s.json")
    idx = np.asarray(sec["poisoned_indices"])
    np.testing.assert_array_equal(new.y[idx], (src.y[idx] + 1) % 10)
    np.testing.assert_array_equal(triggered_labels(src.y[idx], sec), new.y[idx])
    assert np.allclose(sec["_trigger"].mask, 0.2)


def test_clean_label_keeps_labels_and_poisons_only_target(digits_npz: Path, tmp_path: Path) -> None:
    CleanLabel().apply(digits_npz, tmp_path / "o.npz", tmp_path / "s.json",
                       params(CleanLabel, target=5, rate=0.5), np.random.default_rng(0))
    src, new, sec = load_dataset(digits_npz), load_dataset(tmp_path / "o.npz"), load_secret(tmp_path / "s.json")
    idx = np.asarray(sec["poisoned_indices"])
    np.testing.assert_array_equal(new.y, src.y)
    assert (src.y[idx] == 5).all() and len(idx) == round(0.5 * (src.y == 5).sum())
    assert sec["clean_label"] is True


def test_image_folder_round_trip(digits_folder: Path, tmp_path: Path) -> None:
    before = tree_digest(digits_folder)
    out = tmp_path / "poisoned"
    BadNets().apply(digits_folder, out, tmp_path / "s.json", params(BadNets, rate=0.5, target=0,
                    colour="checker", patch_size=3, position="top-left"), np.random.default_rng(2))
    assert tree_digest(digits_folder) == before
    src, new = load_dataset(digits_folder), load_dataset(out)
    assert len(new.y) == len(src.y)  # no file lost to a name clash in the target folder
    assert (new.y == 0).sum() == (src.y == 0).sum() + round(0.5 * (src.y != 0).sum())


def test_interrupted_secret_write_leaves_nothing(digits_npz: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import provscan_poison.injectors as inj

    def boom(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(inj, "atomic_write_text", boom)
    with pytest.raises(KeyboardInterrupt):
        BadNets().apply(digits_npz, tmp_path / "o.npz", tmp_path / "s.json", params(BadNets),
                        np.random.default_rng(0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.npz"]


def test_interrupted_folder_write_leaves_no_partial_dir(digits_folder: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    real_save, calls = Image.Image.save, []

    def flaky_save(self: Image.Image, *a: object, **k: object) -> None:
        calls.append(1)
        if len(calls) > 20:
            raise OSError("disk full")
        real_save(self, *a, **k)

    monkeypatch.setattr(Image.Image, "save", flaky_save)
    with pytest.raises(OSError):
        BadNets().apply(digits_folder, tmp_path / "o", tmp_path / "s.json", params(BadNets),
                        np.random.default_rng(0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_cli_inject_and_apply_trigger(run_cli, digits_npz: Path, tmp_path: Path) -> None:
    res = run_cli("inject", "badnets", digits_npz, "--out", tmp_path / "o.npz", "--secret",
                  tmp_path / "s.json", "--rate", "0.1", "--target", "0", "--seed", "1", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_poisoned"] > 0
    res = CliRunner().invoke(poison, ["apply-trigger", str(digits_npz), "--secret", str(tmp_path / "s.json"),
                                      "--out", str(tmp_path / "trig.npz")])
    assert res.exit_code == 0, res.output
    trig = load_dataset(tmp_path / "trig.npz")
    assert (trig.y == 0).all() and np.allclose(trig.x[:, 0, 6:, 6:], 1.0)


@pytest.mark.parametrize("args, message", [
    (["badnets", "--rate", "0"], "parameter badnets.rate: 0.0 is out of range (0 < rate <= 1)"),
    (["badnets", "--rate", "1.5"], "parameter badnets.rate: 1.5 is out of range (0 < rate <= 1)"),
    (["badnets", "--target", "10"], "unknown target class 10"),
    (["badnets", "--patch-size", "9"], "patch size 9 does not fit 8x8"),
    (["badnets", "--colour", "1,0,0"], "the images have 1 channel"),
    (["badnets", "--position", "middle"], "not one of"),
    (["blended", "--alpha", "0"], "parameter blended.alpha: 0.0 is out of range"),
    (["blended", "--pattern", "PATTERN"], "has shape (1, 16, 16); the images are (1, 8, 8)"),
    (["clean-label", "--hardening", "1"], "parameter clean-label.hardening: 1.0 is out of range"),
])
def test_cli_bad_parameters_one_line_exit_2(run_cli, digits_npz: Path, tmp_path: Path,
                                            args: list[str], message: str) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(tmp_path / "p.png")
    args = [str(tmp_path / "p.png") if a == "PATTERN" else a for a in args]
    before = tree_digest(tmp_path)
    res = run_cli("inject", args[0], digits_npz, "--out", tmp_path / "o.npz", "--secret",
                  tmp_path / "s.json", *args[1:])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert tree_digest(tmp_path) == before


def test_npz_output_needs_npz_suffix(digits_npz: Path, tmp_path: Path) -> None:
    with pytest.raises(ProvscanError, match="ending in .npz"):
        BadNets().apply(digits_npz, tmp_path / "outdir", tmp_path / "s.json", params(BadNets),
                        np.random.default_rng(0))
