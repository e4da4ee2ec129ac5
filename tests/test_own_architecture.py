"""Plain state dicts of a user's own architecture: input shape, class count and normalisation
from the command line, or inferred from a detector's data (``Detector.input_hints``)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import provscan
from provscan import Claim, Decision, Detector, Evidence, OpenOptions, open_checkpoint

ARCH = textwrap.dedent('''
    from torch import nn


    class TinyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))

        def forward(self, x):
            return self.body(x)
''')


@pytest.fixture
def own_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "tiny_own_arch.py").write_text(ARCH)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tiny_own_arch", raising=False)
    import tiny_own_arch

    torch.manual_seed(0)
    path = tmp_path / "weights.pt"
    torch.save(tiny_own_arch.TinyNet().state_dict(), path)
    return path


def test_input_options_open_a_plain_state_dict_with_its_normalisation(provscan_host, own_model):
    import tiny_own_arch

    opts = OpenOptions(device="cpu", model_factory="tiny_own_arch:TinyNet", input_shape=(1, 4, 4),
                       num_classes=3, input_mean=(0.5,), input_std=(0.25,))
    with open_checkpoint(provscan_host, own_model, opts) as opened:
        target = opened.require_target()
        assert target.input_shape == (1, 4, 4) and target.num_classes == 3
        x = np.random.default_rng(1).random((5, 1, 4, 4), dtype=np.float32)
        net = tiny_own_arch.TinyNet()
        net.load_state_dict(torch.load(own_model, weights_only=True))
        want = net((torch.from_numpy(x) - 0.5) / 0.25).detach().numpy()
        np.testing.assert_allclose(target.logits(x), want, rtol=1e-5, atol=1e-5)
        assert target.info["normalisation"] == {"mean": [0.5], "std": [0.25]}


@pytest.mark.parametrize("args, message", [
    (["--input-shape", "1,4"], "expected C,H,W"),
    (["--input-shape", "1,x,4"], "comma-separated numbers"),
    (["--input-std", "0"], "must be > 0"),
    (["--input-mean", "nan"], "finite"),
    (["--input-shape", "1,4,4", "--input-mean", "0.1,0.2"], "2 values for 1 channels"),
])
def test_malformed_input_options_are_usage_errors(run_cli, own_model, args, message):
    res = run_cli("verify", own_model, "--model-factory", "tiny_own_arch:TinyNet", *args)
    assert res.exit_code == 2 and message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


class ShapeProbe(Detector):
    """Reports the input shape and class count the target was opened with."""

    id = "test.shape-probe"
    applies_to = ("classifier",)
    params = (provscan.Param("shape", str, "", "C,H,W this detector's data has"),)

    @classmethod
    def input_hints(cls, params: dict[str, Any]) -> dict[str, Any]:
        if not params["shape"]:
            return {}
        return {"input_shape": tuple(int(v) for v in params["shape"].split(",")), "num_classes": 3}

    def run(self, target: Any, params: dict[str, Any], rng: np.random.Generator) -> Evidence:
        claim = Claim(name="shape", null_hypothesis="n/a", test="none", statistic=None,
                      p_value=None, alpha=0.05, n=0, decision=Decision.NO_EVIDENCE, summary="")
        return Evidence(self.id, self.version, "test", target.kind, [claim],
                        details={"input_shape": list(target.input_shape),
                                 "num_classes": target.num_classes})


class _Plugin:
    @provscan.hookimpl
    def register_detectors(self) -> list[type]:
        return [ShapeProbe]


def test_detector_data_fills_a_missing_input_shape(register_plugin, run_cli, own_model):
    register_plugin(_Plugin(), name="shape-probe")
    res = run_cli("verify", own_model, "--model-factory", "tiny_own_arch:TinyNet", "-d",
                  "test.shape-probe", "-p", "test.shape-probe.shape=1,4,4", "--format", "json")
    ev = next(e for e in json.loads(res.stdout)["evidence"] if e["detector"] == "test.shape-probe")
    assert ev["details"] == {"input_shape": [1, 4, 4], "num_classes": 3}, res.output
    # Without the data, nothing says the shape: the model is not opened and the scan says why.
    res = run_cli("verify", own_model, "--model-factory", "tiny_own_arch:TinyNet", "-d",
                  "test.shape-probe", "--format", "json")
    assert res.exit_code == 3
    ev = next(e for e in json.loads(res.stdout)["evidence"] if e["detector"] == "test.shape-probe")
    assert "--input-shape" in json.dumps(ev)
