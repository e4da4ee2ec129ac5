"""The taggants detector on real trained models: the watermark baseline (fast to learn) with its
clean twin, CLI exit codes, wrong secrets, top-k-only and endpoint targets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from provscan_taggants.craft import smooth_keys
from provscan_taggants.detector import TaggantsDetector
from provscan_taggants.protect import TaggantConfig, protect
from provscan_taggants.secret import Secret, write_secret

from provscan import ClassifierTarget, detector_rng, verify
from provscan.datasets import save_dataset
from provscan.testing.server import serve_target

sys.path.insert(0, str(Path(__file__).parent))
from taggants_helpers import digits_split, train_mlp_dir  # noqa: E402


def _watermark_pair(root: Path) -> None:
    """Watermark-protected data, its secret, a model trained on it and a clean twin."""
    train, _ = digits_split()
    prot = protect(train, TaggantConfig(mode="watermark"), seed=3)
    save_dataset(prot.data, root / "protected.npz")
    write_secret(prot.secret, root / "secret.json")
    train_mlp_dir(prot.data.x, prot.data.y, root / "protected-model", seed=21)
    train_mlp_dir(train.x, train.y, root / "clean-model", seed=22)


@pytest.fixture
def pair(shared_artifact) -> Path:
    return shared_artifact("taggants-watermark-pair", _watermark_pair)


def _claims(result: Any) -> dict[str, Any]:
    ev = next(e for e in result.evidence if e.detector == "taggants")
    assert ev.error is None, ev.error
    return {c.name: c for c in ev.claims} | {"primary": ev.primary}


def test_watermark_detected_and_clean_twin_not(pair: Path) -> None:
    params = {"taggants": {"secret": str(pair / "secret.json"), "augment": 4}}
    prot = _claims(verify(pair / "protected-model", ["taggants"], params))
    clean = _claims(verify(pair / "clean-model", ["taggants"], params))
    assert prot["primary"] == "rank"
    assert prot["rank"].neg_log10_p >= 5 and prot["top-k"].neg_log10_p >= 3
    assert prot["rank"].decision.value == "finding"
    assert clean["rank"].neg_log10_p < 2 and clean["top-k"].neg_log10_p < 2


def test_cli_exit_codes_and_json(pair: Path, run_cli, tmp_path: Path) -> None:
    res = run_cli("verify", pair / "protected-model", "--detector", "taggants", "--param",
                  f"taggants.secret={pair / 'secret.json'}", "--format", "json", "--out", tmp_path / "r")
    assert res.exit_code == 1, res.output  # finding: the policy fails the model
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    ev = next(e for e in report["evidence"] if e["detector"] == "taggants")
    assert {c["name"] for c in ev["claims"]} == {"top-k", "rank"}
    res = run_cli("verify", pair / "clean-model", "--detector", "taggants", "--param",
                  f"taggants.secret={pair / 'secret.json'}")
    assert res.exit_code == 0, res.output


def test_wrong_or_missing_secret_exits_2(pair: Path, run_cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    wrong = tmp_path / "wrong.json"
    write_secret(Secret(smooth_keys(4, (1, 16, 16), rng), np.array([0, 1, 2, 3]), 10), wrong)
    broken = tmp_path / "broken.json"
    broken.write_text((pair / "secret.json").read_text().replace('"labels": [', '"labels": [1, '))
    for extra in (["--param", f"taggants.secret={wrong}"], ["--param", f"taggants.secret={broken}"],
                  ["--param", f"taggants.secret={tmp_path / 'none.json'}"], []):
        res = run_cli("verify", pair / "protected-model", "--detector", "taggants", *extra)
        assert res.exit_code == 2, res.output
        assert len(res.output.strip().splitlines()) == 1 and "secret" in res.output


class LabelOnly(ClassifierTarget):
    """A local model seen through a label-only API (top-1 answers, no scores)."""

    def logits(self, x: Any) -> np.ndarray:
        raise NotImplementedError("label-only")

    def predict_topk(self, x: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k != 1:
            raise ValueError("label-only API answers top-1")
        idx = ClassifierTarget.logits(self, x).argmax(-1)[:, None]
        return idx, np.full(idx.shape, np.nan)


def _module(path: Path) -> torch.nn.Module:
    from safetensors.torch import load_file

    from provscan.architectures import mlp

    m = mlp(in_channels=1, num_classes=10, image_size=8, hidden=128)
    m.load_state_dict(load_file(str(path / "model.safetensors")))
    return m


def test_top_k_only_target_uses_the_binomial_test(pair: Path) -> None:
    target = LabelOnly(_module(pair / "protected-model"), 10, (1, 8, 8), location="x", format="t")
    params = {"secret": str(pair / "secret.json"), "k": 1, "augment": 0, "primary": "auto",
              "alpha": 0.001}
    ev = TaggantsDetector().run(target, params, detector_rng(0, "taggants"))
    claims = {c.name: c for c in ev.claims}
    assert ev.primary == "top-k" and claims["rank"].decision.value == "inconclusive"
    assert claims["top-k"].neg_log10_p >= 3


def test_endpoint_targets_scores_and_label_only(pair: Path) -> None:
    local = ClassifierTarget(_module(pair / "protected-model"), 10, (1, 8, 8), location="l", format="t")
    params = {"taggants": {"secret": str(pair / "secret.json")}}
    here = _claims(verify(pair / "protected-model", ["taggants"], params))
    with serve_target(local, model_name="suspect") as url:
        remote = _claims(verify(url, ["taggants"], params))
    assert remote["rank"].p_value == pytest.approx(here["rank"].p_value)
    # without shifted copies, label-only top-1 answers give the same hits as full scores
    params["taggants"]["augment"] = 0
    here = _claims(verify(pair / "protected-model", ["taggants"], params))
    with serve_target(local, model_name="suspect", scores=False, max_top_k=1) as url:
        label_only = _claims(verify(url, ["taggants"], params))
    assert label_only["primary"] == "top-k" and label_only["rank"].p_value is None
    assert label_only["top-k"].p_value == pytest.approx(here["top-k"].p_value)
