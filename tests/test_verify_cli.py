"""`provscan verify` end to end: exit codes by verdict, failure isolation, bad inputs, outputs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import provscan
from provscan.architectures import small_cnn
from provscan.classifier_card import save_classifier
from provscan.detectors import Detector
from provscan.evidence import Claim, Evidence
from provscan.params import Param


def tiny_model(path: Path) -> Path:
    torch.manual_seed(0)
    save_classifier(small_cnn(), path, "small-cnn", {}, 10, (1, 8, 8))
    return path


class _Base(Detector):
    applies_to = ("classifier",)
    p_value = 0.5

    def run(self, target, params, rng):
        # a real forward pass, so the detector exercises the opened target
        logits = target.logits(np.zeros((2, 1, 8, 8), dtype=np.float32))
        assert logits.shape == (2, 10)
        claim = Claim("test", "the model is unremarkable", "exact binomial (greater)", 1.0, self.p_value,
                      params.get("alpha", 0.05), 10, counts={"k": 1})
        return Evidence(self.id, self.version, self.plugin, target.kind, [claim], primary="test")


class PassingDetector(_Base):
    id = "t.pass"
    params = (Param("alpha", float, 0.05, "level"),)


class FailingDetector(_Base):
    id = "t.fail"
    p_value = 1e-4


class RaisingDetector(_Base):
    id = "t.raise"

    def run(self, target, params, rng):
        raise RuntimeError("plugin bug")


class TwoClaimDetector(_Base):
    id = "t.two"

    def run(self, target, params, rng):
        a = Claim("strong", "H0 a", "exact binomial (greater)", 3.0, 0.03, 0.05, 10)
        b = Claim("weak", "H0 b", "exact binomial (greater)", 1.0, 0.4, 0.05, 10)
        return Evidence(self.id, self.version, self.plugin, target.kind, [a, b], primary="weak")


class TestPlugin:
    __test__ = False

    @provscan.hookimpl
    def register_detectors(self):
        return [PassingDetector, FailingDetector, RaisingDetector, TwoClaimDetector]


@pytest.fixture
def env(tmp_path, monkeypatch, register_plugin):
    monkeypatch.setenv("PROVSCAN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PROVSCAN_KEY_PASSPHRASE", raising=False)
    monkeypatch.chdir(tmp_path)
    register_plugin(TestPlugin(), name="test-detectors")
    return tmp_path


@pytest.fixture
def model(env):
    return tiny_model(env / "model")


def test_all_passing_exit_0(model, run_cli):
    res = run_cli("verify", model, "-d", "t.pass")
    assert res.exit_code == 0, res.output
    assert "t.pass" in res.output and "verdict: pass" in res.output


def test_failing_claim_exit_1(model, run_cli):
    res = run_cli("verify", model, "-d", "t.pass", "-d", "t.fail")
    assert res.exit_code == 1, res.output
    assert "t.fail/test: finding" in res.output


def test_raising_detector_is_an_error_entry_others_kept_exit_3(model, run_cli, env):
    res = run_cli("verify", model, "-d", "t.raise", "-d", "t.pass", "--format", "json", "--out", env / "o")
    assert res.exit_code == 3, res.output
    report = json.loads((env / "o" / "report.json").read_text())
    by_id = {e["detector"]: e for e in report["evidence"]}
    assert by_id["t.raise"]["decision"] == "error" and "plugin bug" in by_id["t.raise"]["error"]
    assert by_id["t.pass"]["decision"] == "no-evidence"
    assert by_id["file-safety"]["decision"] == "no-evidence"
    assert report["verdict"]["status"] == "inconclusive"


def test_policy_inconclusive_warn_passes(model, run_cli, env):
    (env / "p.toml").write_text('inconclusive = "warn"\n')
    res = run_cli("verify", model, "-d", "t.raise", "--policy", env / "p.toml")
    assert res.exit_code == 0, res.output
    assert "warning: t.raise: error" in res.output


def test_policy_selects_claim_alpha_and_required_detectors(model, run_cli, env):
    (env / "p.toml").write_text('[detectors."t.two"]\nclaim = "strong"\nalpha = 0.01\n')
    res = run_cli("verify", model, "--policy", env / "p.toml")  # t.two added by the policy
    assert res.exit_code == 0, res.output
    assert "t.two" in res.output
    (env / "p2.toml").write_text('[detectors."t.two"]\nclaim = "strong"\nalpha = 0.05\n')
    assert run_cli("verify", model, "--policy", env / "p2.toml").exit_code == 1
    (env / "p3.toml").write_text('[detectors."t.fail"]\naction = "warn"\n')
    res = run_cli("verify", model, "--policy", env / "p3.toml")
    assert res.exit_code == 0 and "warning: t.fail/test: finding" in res.output


def test_policy_plugin_allow_list(model, run_cli, env):
    (env / "p.toml").write_text('[plugins]\nsome-other = ">=1"\n')
    res = run_cli("verify", model, "-d", "t.pass", "--policy", env / "p.toml")
    assert res.exit_code == 1 and "not allowed" in res.output
    (env / "p2.toml").write_text('[plugins]\ntest-plugin = ">=1"\n')  # registered as version 0
    res = run_cli("verify", model, "-d", "t.pass", "--policy", env / "p2.toml")
    assert res.exit_code == 1 and "outside" in res.output
    (env / "p3.toml").write_text('[plugins]\ntest-plugin = "<1"\n')
    assert run_cli("verify", model, "-d", "t.pass", "--policy", env / "p3.toml").exit_code == 0


def test_outputs_written_atomically_and_quiet(model, run_cli, env):
    assert run_cli("keys", "new", "ci").exit_code == 0
    res = run_cli("verify", model, "-d", "t.pass", "--sign", "ci", "--out", env / "o", "--quiet",
                  *[x for f in ("text", "json", "sarif", "html") for x in ("--format", f)])
    assert res.exit_code == 0, res.output
    assert res.output == ""
    assert sorted(p.name for p in (env / "o").iterdir()) == [
        "certificate.intoto.json", "report.html", "report.json", "report.sarif", "report.txt"]
    res = run_cli("verify", model, "--out", env / "o")
    assert res.exit_code == 2 and "already exists" in res.output


def test_sign_without_out_writes_default_certificate(model, run_cli, env):
    assert run_cli("keys", "new", "ci").exit_code == 0
    assert run_cli("verify", model, "--sign", "ci").exit_code == 0
    assert (env / "provscan-certificate.intoto.json").is_file()


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", ["missing-key", "wrong-key-file", "wrong-passphrase", "no-passphrase",
                                  "bad-policy-toml", "unknown-policy-key", "unknown-detector",
                                  "malformed-param", "unknown-param", "unknown-format",
                                  "missing-policy", "bad-param-value", "unknown-builtin-policy"])
def test_bad_inputs_one_line_exit_2_nothing_written(case, model, run_cli, env, monkeypatch):
    assert run_cli("keys", "new", "ci").exit_code == 0
    monkeypatch.setenv("PROVSCAN_KEY_PASSPHRASE", "right horse")
    assert run_cli("keys", "new", "locked").exit_code == 0
    monkeypatch.delenv("PROVSCAN_KEY_PASSPHRASE")
    (env / "bad.toml").write_text("name = [unclosed\n")
    (env / "unknown.toml").write_text('name = "x"\nfail_fast = true\n')
    (env / "notakey.pem").write_text("hello\n")
    args = {
        "missing-key": ["--sign", "nobody"],
        "wrong-key-file": ["--sign", env / "notakey.pem"],
        "wrong-passphrase": ["--sign", "locked"],
        "no-passphrase": ["--sign", "locked"],
        "bad-policy-toml": ["--policy", env / "bad.toml"],
        "unknown-policy-key": ["--policy", env / "unknown.toml"],
        "unknown-detector": ["-d", "nope"],
        "malformed-param": ["-d", "t.pass", "--param", "alpha0.1"],
        "unknown-param": ["-d", "t.pass", "--param", "t.pass.beta=1"],
        "bad-param-value": ["-d", "t.pass", "--param", "t.pass.alpha=lots"],
        "unknown-format": ["--format", "pdf"],
        "missing-policy": ["--policy", env / "nope.toml"],
        "unknown-builtin-policy": ["--policy", "builtin:nope"],
    }[case]
    environ = {"PROVSCAN_KEY_PASSPHRASE": "wrong"} if case == "wrong-passphrase" else None
    before = snapshot(env)
    res = run_cli("verify", model, *args, "--out", env / "o", "--format", "json", env=environ)
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("error: "), res.output
    assert snapshot(env) == before
