"""SARIF for GitHub code scanning: Microsoft's SARIF multitool with GitHub's rules reports nothing.

The multitool comes from npm (``@microsoft/sarif-multitool-linux``; ``.ci/run`` installs it). The
test finds it through ``$PROVSCAN_SARIF_MULTITOOL`` or ``sarif-multitool-linux`` on PATH and is
skipped, with the reason, when it is absent. Reports cover every detector family: real scans for
file safety (unsafe and not-understood files), and evidence shaped like the first-party
detectors' (taggants, backdoor, spin, misalignment) rendered through the public reporter.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from provscan import api
from provscan.architectures import small_cnn
from provscan.classifier_card import save_classifier
from provscan.evidence import Bound, Claim, Decision, Evidence
from provscan.policy import evaluate, parse_policy
from provscan.report.sarif import INCONCLUSIVE_RULE, SarifReporter, family, rule_name

sys.path.insert(0, str(Path(__file__).parent))
import malicious_checkpoints  # noqa: E402

sarif_model = pytest.importorskip("pydantic_sarif.model")


def multitool() -> Path | None:
    """The Sarif.Multitool executable (not npm's bin.js wrapper, which passes arguments through a
    shell and so splits ``Gh;Sarif`` at the semicolon)."""
    env = os.environ.get("PROVSCAN_SARIF_MULTITOOL")
    found = Path(env) if env else None
    if found is None and (which := shutil.which("sarif-multitool-linux")):
        found = Path(which).resolve().parent / "Sarif.Multitool"
    return found if found is not None and found.is_file() else None


def validate(paths: list[Path], out: Path) -> list[dict]:
    """Run ``validate --rule-kind Gh;Sarif`` on the files; return its error and warning results."""
    tool = multitool()
    assert tool is not None
    proc = subprocess.run([str(tool), "validate", "--rule-kind", "Gh;Sarif", "--output", str(out),
                           *map(str, paths)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DOTNET_CLI_TELEMETRY_OPTOUT": "1"})
    assert out.is_file(), proc.stdout + proc.stderr
    log = json.loads(out.read_text(encoding="utf-8-sig"))
    assert log["runs"][0]["invocations"][0]["executionSuccessful"], proc.stdout
    return [r for r in log["runs"][0].get("results", []) if r.get("level", "warning") in ("error", "warning")]


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    save_classifier(small_cnn(), tmp_path / "models" / "clean", "small-cnn", {}, 10, (1, 8, 8))
    return Path("models/clean")


def _family_evidence() -> list[Evidence]:
    """Evidence shaped like the first-party detectors': a finding, a no-evidence claim and an
    inconclusive one per family."""
    null = "the model was not trained on the protected data"
    return [
        Evidence("taggants", "0.1.0", "provscan-taggants", "classifier", [
            Claim("top-k", null, "exact binomial: hits ~ Binomial(K=20, 5/10)", 18.0, 2.0e-4, 0.01, 20,
                  bound=Bound("Clopper-Pearson hit rate", 0.95, 0.68, 0.99), counts={"hits": 18}),
            Claim("rank", null, "exact rank-sum", None, None, 0.01, 20, decision=Decision.INCONCLUSIVE,
                  summary="the target returns only top-k labels, so the rank test cannot run")],
            primary="top-k"),
        Evidence("backdoor.trigger-inversion", "0.2.0", "provscan-backdoor", "classifier", [
            Claim("anomaly", "no class is the target of a small universal trigger",
                  "conformal rank among 19 clean reference models", 0.91, 0.35, 0.05, 19,
                  summary="class 3: trigger norm 4.1 (reference median 17.2)")], primary="anomaly"),
        Evidence("spin", "0.1.0", "provscan-spin", "causal-lm", [
            Claim("stance-shift", "the trigger does not shift the stance of generated text",
                  "exact one-sided rank-sum test", 412.0, 0.31, 0.01, 64)], primary="stance-shift"),
        Evidence("misalignment", "0.1.0", "provscan-misalignment", "causal-lm", [
            Claim("rate", "the misaligned-answer rate is at most the reference rate",
                  "exact binomial (greater)", 9.0, 0.004, 0.01, 48,
                  bound=Bound("Clopper-Pearson", 0.95, 0.09, 0.33))], primary="rate"),
        Evidence("cot-monitor", "0.1.0", "provscan-misalignment", "causal-lm", [],
                 error="judge endpoint refused the request"),
    ]


def _with_evidence(result, evidence: list[Evidence]):
    """The same scan judged on other evidence (the reporter sees a complete ScanResult)."""
    policy = parse_policy('name = "gate"\n[detectors.taggants]\naction = "warn"\n'
                          '[detectors."backdoor.trigger-inversion"]\nrequired = true\n'
                          '[detectors.provscan-test-missing]\nrequired = true\n')
    scan = dataclasses.replace(result.scan, policy=policy)
    ev = [*result.evidence, *evidence]
    return dataclasses.replace(result, scan=scan, evidence=ev, verdict=evaluate(policy, ev))


def _reports(tmp_path: Path, model: Path, provscan_host) -> dict[str, Path]:
    evil = Path("models/evil")
    evil.mkdir(parents=True)
    malicious_checkpoints.hf_dir_malicious_bin(evil, tmp_path / "canary")
    odd = Path("models/odd")
    shutil.copytree(model, odd)
    (odd / "notes.weird").write_bytes(b"\x00\x01not a format provscan understands")
    single = Path("single.pt")
    malicious_checkpoints.torch_zip_payload(tmp_path / "single-src", tmp_path / "canary")
    shutil.copy(next((tmp_path / "single-src").iterdir()), single)
    clean = api.verify(model, formats=(), host=provscan_host)
    runs = {
        "clean": clean,
        "evil": api.verify(evil, formats=(), host=provscan_host),
        "odd": api.verify(odd, formats=(), host=provscan_host),
        "single": api.verify(single, formats=(), host=provscan_host),
        "families": _with_evidence(clean, _family_evidence()),
    }
    try:
        from model_signing import hashing, signing
    except ImportError:  # the other families are still covered
        pass
    else:  # a real model-signing verification that fails: one byte changed after signing
        from provscan.keys import new_key

        tampered = Path("models/tampered")
        shutil.copytree(model, tampered)
        key = new_key("ms", directory=tmp_path / "keys", type="ecdsa-p256")
        signing.Config().use_elliptic_key_signer(private_key=key.private).set_hashing_config(
            hashing.Config().set_ignored_paths(paths=["model.sig"])).sign(tampered, tampered / "model.sig")
        card = tampered / "provscan_model.json"
        card.write_text(card.read_text() + " ")
        runs["tampered"] = api.verify(tampered, detectors=["model-signing"], formats=(), host=provscan_host,
                                      params={"model-signing": {"public_key": str(key.public)}})
        assert runs["tampered"].exit_code == 1
    out = {}
    for name, res in runs.items():
        out[name] = tmp_path / f"{name}.sarif"
        out[name].write_bytes(SarifReporter().render(res))
    return out


def test_file_level_locations_rules_and_categories(tmp_path, model, provscan_host):
    paths = _reports(tmp_path, model, provscan_host)
    logs = {k: json.loads(p.read_text()) for k, p in paths.items()}
    for log in logs.values():
        sarif_model.StaticAnalysisResultsFormatSarifVersion210JsonSchema.model_validate(log)
        run = log["runs"][0]
        for rule in run["tool"]["driver"]["rules"]:
            assert rule["name"].lower() != rule["id"].lower() and rule["fullDescription"]["text"]
            assert rule["help"]["text"] and rule["help"]["markdown"]
            if rule["id"] != INCONCLUSIVE_RULE:
                assert 0 < float(rule["properties"]["security-severity"]) <= 10
                assert rule["properties"]["tags"]
        for r in run["results"]:
            assert run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
            loc = r["locations"][0]["physicalLocation"]
            assert loc["region"]["startLine"] == 1 and Path(loc["artifactLocation"]["uri"]).is_file()
    assert logs["clean"]["runs"][0]["results"] == []
    evil = logs["evil"]["runs"][0]
    assert [(r["ruleId"], r["kind"], r["level"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
            for r in evil["results"]] == [("file-safety", "fail", "error", "models/evil/pytorch_model.bin")]
    assert evil["automationDetails"]["id"] == "provscan/models/evil/"
    odd = logs["odd"]["runs"][0]["results"]
    assert [(r["ruleId"], r["level"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
            for r in odd] == [(INCONCLUSIVE_RULE, "none", "models/odd/notes.weird")]
    single = logs["single"]["runs"][0]
    assert single["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "single.pt"
    fam = logs["families"]["runs"][0]
    by_rule = {}
    for r in fam["results"]:
        by_rule.setdefault(r["ruleId"], []).append(r)
    assert {r["properties"]["detector"] for r in by_rule[INCONCLUSIVE_RULE]} == {
        "taggants", "cot-monitor", "provscan-test-missing"}
    assert [r["level"] for r in by_rule["taggants"]] == ["warning"]  # the policy only warns
    assert [r["level"] for r in by_rule["misalignment"]] == ["error"]
    assert "backdoor.trigger-inversion" not in by_rule and "spin" not in by_rule  # no evidence
    weights = max(model.iterdir(), key=lambda p: p.stat().st_size).as_posix()
    assert by_rule["misalignment"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == weights
    # categories differ per target, stay the same per target
    assert fam["automationDetails"]["id"] == logs["clean"]["runs"][0]["automationDetails"]["id"] == \
        "provscan/models/clean/"
    if "tampered" in logs:
        [signed] = logs["tampered"]["runs"][0]["results"]
        assert (signed["ruleId"], signed["level"]) == ("model-signing", "error")
        assert "provscan_model.json" in signed["message"]["text"]
    ids = {r["id"]: r for r in fam["tool"]["driver"]["rules"]}
    assert ids["file-safety"]["properties"]["security-severity"] == "9.8"
    assert ids["taggants"]["properties"]["tags"] == ["provenance", "data-licensing"]


def test_family_and_rule_names():
    assert family("backdoor.max-margin") is family("backdoor.trigger-inversion")
    assert family("backdoors-elsewhere").severity == family("someone.else").severity
    assert rule_name("file-safety") == "FileSafety" and rule_name("spin") == "SpinCheck"
    assert rule_name("backdoor.trigger-inversion") == "BackdoorTriggerInversion"


@pytest.mark.skipif(multitool() is None, reason="SARIF multitool not installed (npm install "
                    "@microsoft/sarif-multitool-linux; or set PROVSCAN_SARIF_MULTITOOL)")
def test_sarif_multitool_with_github_rules_reports_nothing(tmp_path, model, provscan_host):
    paths = _reports(tmp_path, model, provscan_host)
    broken = json.loads(paths["evil"].read_text())
    for rule in broken["runs"][0]["tool"]["driver"]["rules"]:
        del rule["help"]
    bad = tmp_path / "broken.sarif"
    bad.write_text(json.dumps(broken))
    problems = validate([*paths.values(), bad], tmp_path / "validation.sarif")
    where = [(Path(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]).name,
              r["ruleId"], r["message"]) for r in problems]
    assert {w[0] for w in where} == {"broken.sarif"}, where  # the check can fail, and does here
    assert {w[1] for w in where} == {"GH2012"}, where
