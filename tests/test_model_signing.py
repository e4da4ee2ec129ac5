"""model-signing interop: one P-256 key for both tools, model-signing's root digest computed by
provscan, and ``model.sig`` verified inside a scan (pass, tampered, unsigned, wrong key)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from provscan import api, keys
from provscan.architectures import small_cnn
from provscan.certificate import CERT_NAME, verify_envelope
from provscan.classifier_card import save_classifier
from provscan.digest import compute_manifest, model_signing_root

ms_hashing = pytest.importorskip("model_signing.hashing", reason="model-signing is not installed")
from model_signing import signing as ms_signing  # noqa: E402
from model_signing import verifying as ms_verifying  # noqa: E402

GATE = 'name = "signed-gate"\n[detectors.model-signing]\nrequired = true\n'


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVSCAN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PROVSCAN_KEY_PASSPHRASE", raising=False)
    return tmp_path / "home"


@pytest.fixture
def model(tmp_path):
    torch.manual_seed(0)
    save_classifier(small_cnn(), tmp_path / "model", "small-cnn", {}, 10, (1, 8, 8))
    return tmp_path / "model"


def ms_sign(model: Path, private_key: Path, signature: Path | None = None) -> Path:
    """Sign as `model_signing sign key` does: the signature file itself is left out."""
    signature = signature or model / "model.sig"
    ignored = [signature.relative_to(model)] if signature.is_relative_to(model) else []
    ms_signing.Config().use_elliptic_key_signer(private_key=private_key).set_hashing_config(
        ms_hashing.Config().set_ignored_paths(paths=ignored, ignore_git_paths=True)).sign(model, signature)
    return signature


def ms_root(model: Path, ignored: list[str]) -> tuple[str, list[str]]:
    from model_signing._hashing import memory

    manifest = ms_hashing.Config().set_ignored_paths(paths=ignored).hash(model)
    h = memory.SHA256()
    names = []
    for d in manifest.resource_descriptors():
        h.update(d.digest.digest_value)
        names.append(str(d.identifier))
    return h.compute().digest_hex, names


def test_model_signing_root_digest_matches_the_library_on_nested_directories(tmp_path, run_cli):
    m = tmp_path / "nested"
    for rel, data in {"x/y": b"1", "x.y/z": b"2", "x-y": b"3", "x y": b"4", "B": b"5",
                      "a/b/c/d.bin": b"\x00" * 1000, "a/b.c": b"6", "sub/.gitignore": b"7",
                      "sub/.github/w": b"8", ".git/HEAD": b"ref", ".gitattributes": b"*",
                      ".github/x.yml": b"on:", "model.sig": b"{}", "d\u00e9j\u00e0/f": b"9"}.items():
        (m / rel).parent.mkdir(parents=True, exist_ok=True)
        (m / rel).write_bytes(data)
    root, files = model_signing_root(compute_manifest(m), single_file=False)
    want_root, want_names = ms_root(m, ["model.sig"])
    assert root == want_root and [f.path for f in files] == want_names
    assert want_names.index("x/y") < want_names.index("x.y/z")  # components, not a string sort
    assert root != compute_manifest(m).root_sha256
    res = run_cli("digest", m, "--format", "model-signing", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["root_sha256"] == want_root and data["format"] == "model-signing"
    res = run_cli("digest", m, "--format", "model-signing")
    assert res.exit_code == 0 and f"sha256:{want_root}" in res.output.splitlines()[-1]
    # a change anywhere that model-signing signs changes both digests
    (m / "a/b/c/d.bin").write_bytes(b"\x00" * 999 + b"\x01")
    assert model_signing_root(compute_manifest(m), False)[0] == ms_root(m, ["model.sig"])[0] != root
    single = m / "a/b.c"
    assert model_signing_root(compute_manifest(single), True)[0] == ms_root(single, [])[0]


def test_one_p256_key_signs_a_certificate_and_a_model_signing_signature(home, model, tmp_path, run_cli):
    res = run_cli("keys", "new", "release", "--type", "ecdsa-p256")
    assert res.exit_code == 0, res.output
    info = next(i for i in keys.list_keys() if i.name == "release")
    sig = ms_sign(model, info.private)
    ms_verifying.Config().use_elliptic_key_verifier(public_key=info.public).set_hashing_config(
        ms_hashing.Config().set_ignored_paths(paths=["model.sig"])).verify(model, sig)
    res = run_cli("verify", model, "--sign", "release", "--out", tmp_path / "out", "--quiet",
                  "--policy", _policy(tmp_path, GATE), "--param", f"model-signing.public_key={info.public}")
    assert res.exit_code == 0, res.output
    verified = verify_envelope((tmp_path / "out" / CERT_NAME).read_bytes(), [keys.load_public_key(info.public)])
    assert verified.keyids == (info.keyid,)
    claim = next(c for c in verified.predicate["claims"] if c["detector"] == "model-signing")
    assert claim["decision"] == "no-evidence" and info.keyid in claim["summary"]
    # a key made by openssl works for both as well
    if shutil.which("openssl"):
        key, pub = tmp_path / "o.key", tmp_path / "o.pub"
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", str(key)], check=True, capture_output=True, timeout=60)
        subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True,
                       capture_output=True, timeout=60)
        other = tmp_path / "other-model"
        shutil.copytree(model, other, ignore=shutil.ignore_patterns("model.sig"))
        ms_sign(other, key)
        result = api.verify(other, sign=key, params={"model-signing": {"public_key": str(pub)}},
                            policy=_policy(tmp_path, GATE), formats=(), out=tmp_path / "out2")
        assert result.exit_code == 0, result.verdict.reasons
        verify_envelope(result.certificate, [keys.load_public_key(pub)])


def _policy(tmp_path: Path, text: str) -> Path:
    p = tmp_path / f"policy-{abs(hash(text))}.toml"
    p.write_text(text)
    return p


def _verify(run_cli, model, tmp_path, pub, policy=GATE, *extra):
    out = tmp_path / f"o{len(list(tmp_path.glob('o*')))}"
    res = run_cli("verify", model, "--policy", _policy(tmp_path, policy), "--format", "json",
                  "--out", out, "--quiet", "--param", f"model-signing.public_key={pub}", *extra)
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None
    ev = next((e for e in report["evidence"] if e["detector"] == "model-signing"), None) if report else None
    return res, ev


def test_scan_requiring_the_signature_pass_tampered_unsigned_wrong_key(home, model, tmp_path, run_cli):
    info = keys.new_key("signer", type="ecdsa-p256")
    ms_sign(model, info.private)
    res, ev = _verify(run_cli, model, tmp_path, info.public)
    assert res.exit_code == 0, res.output
    assert ev["claims"][0]["decision"] == "no-evidence"
    assert ev["details"]["signer"]["keyid"] == info.keyid
    safety = {f["path"]: f for f in json.loads(
        run_cli("verify", model, "--format", "json").output)["target"]["safety"]["files"]}
    assert safety["model.sig"]["verdict"] == "safe" and safety["model.sig"]["format"] == "sigstore-bundle"

    wrong = keys.new_key("other", type="ecdsa-p256")
    res, ev = _verify(run_cli, model, tmp_path, wrong.public)
    assert res.exit_code == 1 and ev["claims"][0]["decision"] == "finding", res.output

    tampered = tmp_path / "tampered"
    shutil.copytree(model, tampered)
    weights = max((p for p in tampered.iterdir() if p.name != "model.sig"), key=lambda p: p.stat().st_size)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    res, ev = _verify(run_cli, tampered, tmp_path, info.public)
    assert res.exit_code == 1, res.output
    assert ev["claims"][0]["decision"] == "finding" and weights.name in ev["claims"][0]["summary"]

    extra = tmp_path / "extra"
    shutil.copytree(model, extra)
    (extra / "notes.txt").write_text("added after signing\n")
    res, ev = _verify(run_cli, extra, tmp_path, info.public)
    assert res.exit_code == 1 and "notes.txt" in ev["claims"][0]["summary"], res.output

    unsigned = tmp_path / "unsigned"
    shutil.copytree(model, unsigned, ignore=shutil.ignore_patterns("model.sig"))
    res, ev = _verify(run_cli, unsigned, tmp_path, info.public)
    assert res.exit_code == 3 and ev["claims"][0]["decision"] == "inconclusive", res.output
    assert "unsigned" in ev["claims"][0]["summary"]
    res, ev = _verify(run_cli, unsigned, tmp_path, info.public, 'name = "lenient"\ninconclusive = "warn"\n'
                      '[detectors.model-signing]\nrequired = true\n')
    assert res.exit_code == 0, res.output


def test_without_the_library_or_a_key_the_detector_is_inconclusive(home, model, tmp_path, run_cli, monkeypatch):
    info = keys.new_key("signer", type="ecdsa-p256")
    ms_sign(model, info.private)
    res, ev = _verify(run_cli, model, tmp_path, "")
    assert res.exit_code == 3 and "public_key" in ev["claims"][0]["summary"]
    monkeypatch.setitem(sys.modules, "model_signing", None)  # import fails as if not installed
    res, ev = _verify(run_cli, model, tmp_path, info.public)
    assert res.exit_code == 3 and ev["claims"][0]["summary"] == \
        "model_signing is not installed (pip install model-signing)"
