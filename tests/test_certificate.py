"""Certificates: PAE, sign/verify round trip, single-byte tampering, docs script, schema."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from provscan import api, certificate
from provscan.architectures import small_cnn
from provscan.certificate import CertificateError, pae, sign_statement, verify_envelope
from provscan.classifier_card import save_classifier
from provscan.keys import keyid, load_public_key

DOCS_SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "examples" / "verify_certificate.py"


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A checkpoint, a key pair and a certificate produced by provscan.api.verify."""
    root = tmp_path_factory.mktemp("cert")
    torch.manual_seed(0)
    save_classifier(small_cnn(), root / "model", "small-cnn", {}, 10, (1, 8, 8))
    os.environ["PROVSCAN_HOME"] = str(root / "home")
    try:
        from provscan.keys import new_key

        info = new_key("ci")
        from provscan.plugins import new_host

        result = api.verify(root / "model", sign="ci", out=root / "out", formats=(),
                            host=new_host(load_entry_points=False))
    finally:
        del os.environ["PROVSCAN_HOME"]
    return root, info, result


def test_pae_matches_dsse_spec_example():
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert pae("t", b"") == b"DSSEv1 1 t 0 "
    assert pae("\u00e9", b"x") == "DSSEv1 2 \u00e9 1 x".encode()  # byte length, not characters


def test_round_trip(signed):
    root, info, result = signed
    data = (root / "out" / certificate.CERT_NAME).read_bytes()
    assert data == result.certificate
    v = verify_envelope(data, [load_public_key(info.public)])
    assert v.keyids == (info.keyid,)
    st = v.statement
    assert st["_type"] == certificate.STATEMENT_TYPE and st["predicateType"] == certificate.PREDICATE_TYPE
    assert st["subject"] == [{"name": "model", "digest": {"sha256": result.scan.manifest.root_sha256}}]
    pred = st["predicate"]
    assert pred["verdict"]["status"] == "pass" and pred["claims"][0]["detector"] == "file-safety"
    assert pred["target"]["manifest"]["files"][0]["sha256"]
    certificate.check_checkpoint(st, root / "model")
    env = json.loads(data)
    assert env["payloadType"] == "application/vnd.in-toto+json"
    assert env["signatures"][0]["keyid"] == info.keyid


def test_cli_round_trip_and_docs_script(signed, run_cli):
    root, info, _ = signed
    cert = root / "out" / certificate.CERT_NAME
    res = run_cli("cert", "verify", cert, "--pubkey", info.public, "--checkpoint", root / "model")
    assert res.exit_code == 0 and res.output.startswith("valid: model"), res.output
    res = run_cli("cert", "show", cert)
    assert res.exit_code == 0 and "file-safety/static-scan" in res.output and "UNVERIFIED" in res.output
    proc = subprocess.run([sys.executable, DOCS_SCRIPT, cert, info.public, root / "model"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("valid: model"), proc.stdout + proc.stderr
    # the script also rejects a tampered payload and another key
    other = root / "other.pub"
    from cryptography.hazmat.primitives import serialization

    other.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    proc = subprocess.run([sys.executable, DOCS_SCRIPT, cert, other], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    res = run_cli("cert", "verify", cert, "--pubkey", other)
    assert res.exit_code == 1 and res.output.startswith("invalid: signature"), res.output


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=hs.integers(min_value=0), delta=hs.integers(min_value=1, max_value=255))
def test_any_single_byte_change_of_the_envelope_fails_unless_it_changes_nothing_signed(signed, pos, delta):
    """DSSE signs PAE(payloadType, payload): a byte change is accepted only when it leaves the type,
    the payload bytes and the signature bytes as they were (JSON whitespace, base64 padding bits,
    the unauthenticated keyid hint); the verified statement is then the original one."""
    root, info, result = signed
    data = bytearray(result.certificate)
    i = pos % len(data)
    data[i] = (data[i] + delta) % 256
    try:
        v = verify_envelope(bytes(data), [load_public_key(info.public)])
    except CertificateError:
        return
    env = json.loads(bytes(data))
    orig = json.loads(result.certificate)
    assert env["payloadType"] == orig["payloadType"]
    assert certificate._b64(env["payload"], "p") == base64.b64decode(orig["payload"])
    assert [certificate._b64(s["sig"], "s") for s in env["signatures"]] == [
        base64.b64decode(s["sig"]) for s in orig["signatures"]]
    assert v.statement == json.loads(base64.b64decode(orig["payload"])) and v.keyids == (info.keyid,)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=hs.integers(min_value=0), delta=hs.integers(min_value=1, max_value=255),
       where=hs.sampled_from(["payload", "signature"]))
def test_any_single_byte_change_of_payload_or_signature_fails(signed, pos, delta, where):
    """Changes to the decoded payload / signature bytes, re-encoded as valid base64."""
    root, info, result = signed
    env = json.loads(result.certificate)
    raw = bytearray(base64.b64decode(env["payload"] if where == "payload" else env["signatures"][0]["sig"]))
    i = pos % len(raw)
    raw[i] = (raw[i] + delta) % 256
    enc = base64.b64encode(bytes(raw)).decode()
    if where == "payload":
        env["payload"] = enc
    else:
        env["signatures"][0]["sig"] = enc
    with pytest.raises(CertificateError) as err:
        verify_envelope(certificate.canonical_json(env), [load_public_key(info.public)])
    assert err.value.check == "signature"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=hs.integers(min_value=0), delta=hs.integers(min_value=1, max_value=255), which=hs.integers(0, 10))
def test_any_single_byte_change_of_a_checkpoint_file_fails(signed, tmp_path_factory, pos, delta, which):
    root, info, result = signed
    copy = tmp_path_factory.mktemp("tamper") / "model"
    copy.mkdir()
    files = sorted(p.name for p in (root / "model").iterdir())
    for name in files:
        (copy / name).write_bytes((root / "model" / name).read_bytes())
    target = copy / files[which % len(files)]
    data = bytearray(target.read_bytes())
    data[pos % len(data)] = (data[pos % len(data)] + delta) % 256
    target.write_bytes(bytes(data))
    statement = json.loads(base64.b64decode(json.loads(result.certificate)["payload"]))
    certificate.check_checkpoint(statement, root / "model")  # the original still matches
    with pytest.raises(CertificateError) as err:
        certificate.check_checkpoint(statement, copy)
    assert err.value.check == "digest"


def test_cli_tampered_checkpoint_and_certificate(signed, run_cli, tmp_path):
    root, info, result = signed
    model = tmp_path / "model"
    model.mkdir()
    for p in (root / "model").iterdir():
        (model / p.name).write_bytes(p.read_bytes())
    (model / "extra.txt").write_text("added")
    cert = root / "out" / certificate.CERT_NAME
    res = run_cli("cert", "verify", cert, "--pubkey", info.public, "--checkpoint", model)
    assert res.exit_code == 1 and res.output.startswith("invalid: digest"), res.output
    bad = tmp_path / "c.json"
    bad.write_bytes(result.certificate.replace(b'"payloadType":"', b'"payloadType":"x'))
    res = run_cli("cert", "verify", bad, "--pubkey", info.public)
    assert res.exit_code == 1 and res.output.count("\n") == 1


@pytest.mark.parametrize("content", [b"", b"not json", b"[]", b'{"payload":"","payloadType":"x"}'])
def test_malformed_certificate_is_invalid_one_line(signed, run_cli, tmp_path, content):
    _, info, _ = signed
    bad = tmp_path / "c.json"
    bad.write_bytes(content)
    res = run_cli("cert", "verify", bad, "--pubkey", info.public)
    assert res.exit_code == 1 and res.output.count("\n") == 1 and res.output.startswith("invalid: ")
    res = run_cli("cert", "show", bad)
    assert res.exit_code == 2 and res.output.count("\n") == 1


def test_cert_verify_bad_inputs_exit_2(signed, run_cli, tmp_path):
    root, info, _ = signed
    cert = root / "out" / certificate.CERT_NAME
    assert run_cli("cert", "verify", tmp_path / "none.json", "--pubkey", info.public).exit_code == 2
    assert run_cli("cert", "verify", cert, "--pubkey", tmp_path / "none.pub").exit_code == 2
    res = run_cli("cert", "verify", cert, "--pubkey", info.public, "--checkpoint", tmp_path / "gone")
    assert res.exit_code == 2 and res.output.count("\n") == 1


def test_several_signatures_and_required_signers(signed, run_cli, tmp_path):
    root, info, result = signed
    k1, k2, k3 = (Ed25519PrivateKey.generate() for _ in range(3))
    st = verify_envelope(result.certificate, [load_public_key(info.public)]).statement
    data = sign_statement(st, [k1, k2])
    v = verify_envelope(data, [k1.public_key(), k2.public_key()], required_signers=[keyid(k2.public_key())])
    assert set(v.keyids) == {keyid(k1.public_key()), keyid(k2.public_key())}
    assert verify_envelope(data, [k2.public_key()]).keyids == (keyid(k2.public_key()),)
    with pytest.raises(CertificateError) as err:
        verify_envelope(data, [k1.public_key()], required_signers=[keyid(k3.public_key())])
    assert err.value.check == "signers"
    with pytest.raises(CertificateError):
        verify_envelope(data, [k3.public_key()])
    # required signers from a policy file, through the CLI
    cert = tmp_path / "c.json"
    cert.write_bytes(data)
    pub = tmp_path / "k1.pub"
    from cryptography.hazmat.primitives import serialization

    pub.write_bytes(k1.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo))
    pol = tmp_path / "p.toml"
    pol.write_text(f'[signers]\nrequired = ["{keyid(k3.public_key())}"]\n')
    res = run_cli("cert", "verify", cert, "--pubkey", pub, "--policy", pol)
    assert res.exit_code == 1 and res.output.startswith("invalid: signers")


def test_signed_but_schema_invalid_predicate_is_rejected(signed):
    _, _, result = signed
    key = Ed25519PrivateKey.generate()
    st = json.loads(base64.b64decode(json.loads(result.certificate)["payload"]))
    del st["predicate"]["claims"][0]["nullHypothesis"]
    with pytest.raises(CertificateError) as err:
        verify_envelope(sign_statement(st, [key]), [key.public_key()])
    assert err.value.check == "schema"
    st["predicateType"] = "https://example.com/other/v1"
    with pytest.raises(CertificateError) as err:
        verify_envelope(sign_statement(st, [key]), [key.public_key()])
    assert err.value.check == "statement"


def test_endpoint_subject_has_no_file_digest():
    subject = certificate.subject_for("http://127.0.0.1:9/v1", None, "tiny")
    assert subject["name"] == "http://127.0.0.1:9/v1#tiny" and len(subject["digest"]["sha256"]) == 64
    again = certificate.subject_for("http://127.0.0.1:9/v1", None, "tiny")
    assert again == subject
    assert certificate.subject_for("http://127.0.0.1:9/v1", None, "other") != subject


def test_endpoint_certificate_round_trip(tmp_path):
    """A URL target: subject = URL#model with an identity digest, and no file digest to compare."""
    from provscan.plugins import new_host
    from provscan.targets import ClassifierTarget
    from provscan.testing.server import serve_target

    torch.manual_seed(0)
    local = ClassifierTarget(small_cnn(), 10, (1, 8, 8), location="mem", format="test", batch_size=16)
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "k.key"
    from cryptography.hazmat.primitives import serialization

    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    with serve_target(local, model_name="cnn") as url:
        result = api.verify(url + "#cnn", sign=pem, out=tmp_path / "out", formats=("json",),
                            host=new_host(load_entry_points=False))
    st = verify_envelope(result.certificate, [key.public_key()]).statement
    assert st["subject"][0]["name"] == url + "#cnn" and st["subject"][0]["uri"] == url + "#cnn"
    assert st["predicate"]["target"]["fileDigest"] is False and st["predicate"]["target"]["note"]
    assert st["predicate"]["target"]["kind"] == "classifier"
    with pytest.raises(CertificateError) as err:
        certificate.check_checkpoint(st, tmp_path / "out")
    assert err.value.check == "digest"
