"""ECDSA P-256 keys: made by provscan, openssl or cryptography; sign and verify certificates."""

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from provscan import api, keys
from provscan.architectures import small_cnn
from provscan.certificate import CertificateError, pae, sign_statement, verify_envelope
from provscan.classifier_card import save_classifier
from provscan.plugins import new_host

DOCS_SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "examples" / "verify_certificate.py"
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVSCAN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PROVSCAN_KEY_PASSPHRASE", raising=False)
    return tmp_path / "home"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("p256")
    torch.manual_seed(0)
    save_classifier(small_cnn(), root / "model", "small-cnn", {}, 10, (1, 8, 8))
    return root / "model"


def openssl_p256(directory: Path) -> tuple[Path, Path]:
    """A P-256 key pair made by the openssl CLI (PKCS#8 private key, SPKI public key)."""
    key, pub = directory / "openssl.key", directory / "openssl.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", str(key)], check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)],
                   check=True, capture_output=True, timeout=60)
    return key, pub


def test_new_p256_key_keyid_list_and_cli(home, run_cli):
    info = keys.new_key("p", type="ecdsa-p256", passphrase="pw")
    pub = keys.load_public_key("p")
    assert isinstance(pub, ec.EllipticCurvePublicKey) and isinstance(pub.curve, ec.SECP256R1)
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert info.keyid == hashlib.sha256(der).hexdigest() == keys.keyid(pub) and info.type == "ecdsa-p256"
    priv = keys.load_private_key("p", passphrase="pw")
    assert keys.keyid(priv.public_key()) == info.keyid
    keys.new_key("e")
    assert [(i.name, i.type) for i in keys.list_keys()] == [("e", "ed25519"), ("p", "ecdsa-p256")]
    res = run_cli("keys", "new", "q", "--type", "ecdsa-p256")
    assert res.exit_code == 0 and "ecdsa-p256" in res.output, res.output
    assert keys.key_type(keys.load_public_key("q")) == "ecdsa-p256"
    res = run_cli("keys", "new", "r", "--type", "rsa")
    assert res.exit_code == 2 and "Invalid value for '--type'" in res.output
    with pytest.raises(keys.KeyFileError, match="unknown key type"):
        keys.new_key("s", type="ecdsa-p384")


@needs_openssl
def test_openssl_p256_key_signs_a_certificate_that_openssl_verifies(model, tmp_path, run_cli):
    key, pub = openssl_p256(tmp_path)
    result = api.verify(model, sign=key, out=tmp_path / "out", formats=(),
                        host=new_host(load_entry_points=False))
    cert = tmp_path / "out" / "certificate.intoto.json"
    verified = verify_envelope(cert.read_bytes(), [keys.load_public_key(pub)])
    assert verified.keyids == (keys.keyid(keys.load_public_key(pub)),)
    assert verified.statement["subject"][0]["digest"]["sha256"] == result.scan.manifest.root_sha256
    # the signature is standard DER ECDSA/SHA-256 over PAE: openssl itself accepts it
    env = json.loads(cert.read_bytes())
    (tmp_path / "pae.bin").write_bytes(pae(env["payloadType"], base64.b64decode(env["payload"])))
    (tmp_path / "sig.der").write_bytes(base64.b64decode(env["signatures"][0]["sig"]))
    ok = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pub), "-signature",
                         str(tmp_path / "sig.der"), str(tmp_path / "pae.bin")],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "Verified OK" in ok.stdout, ok.stdout + ok.stderr
    (tmp_path / "pae.bin").write_bytes(b"x" + (tmp_path / "pae.bin").read_bytes())
    bad = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pub), "-signature",
                          str(tmp_path / "sig.der"), str(tmp_path / "pae.bin")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    res = run_cli("cert", "verify", cert, "--pubkey", pub, "--checkpoint", model)
    assert res.exit_code == 0 and res.output.startswith("valid: model"), res.output
    proc = subprocess.run([sys.executable, DOCS_SCRIPT, cert, pub, model], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("valid: model"), proc.stdout + proc.stderr


def test_mixed_signatures_and_wrong_p256_key():
    p256, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    ed = Ed25519PrivateKey.generate()
    statement = {"_type": "https://in-toto.io/Statement/v1"}
    env = sign_statement(statement, [ed, p256])
    sigs = json.loads(env)["signatures"]
    assert [s["keyid"] for s in sigs] == [keys.keyid(ed.public_key()), keys.keyid(p256.public_key())]
    assert len(base64.b64decode(sigs[0]["sig"])) == 64 and base64.b64decode(sigs[1]["sig"])[0] == 0x30
    with pytest.raises(CertificateError, match="no signature by the given"):
        verify_envelope(env, [other.public_key()])
    # the P-256 signature verifies (the statement itself is then rejected by the schema check)
    with pytest.raises(CertificateError, match="statement|schema"):
        verify_envelope(env, [p256.public_key(), ed.public_key()])
    tampered = json.loads(env)
    raw = bytearray(base64.b64decode(tampered["signatures"][1]["sig"]))
    raw[-1] ^= 1
    tampered["signatures"][1]["sig"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(CertificateError, match="signature"):
        verify_envelope(json.dumps(tampered, sort_keys=True, separators=(",", ":")).encode(),
                        [p256.public_key()])
