"""Key pairs (Ed25519, ECDSA P-256): files, modes, passphrases, CLI."""

import hashlib
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from provscan import keys
from provscan.errors import ProvscanError


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVSCAN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PROVSCAN_KEY_PASSPHRASE", raising=False)
    return tmp_path / "home"


def test_new_key_files_mode_and_keyid(home):
    info = keys.new_key("ci")
    assert info.private == home / "keys" / "ci.key" and info.public == home / "keys" / "ci.pub"
    assert stat.S_IMODE(info.private.stat().st_mode) == 0o600
    assert info.private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    pub = keys.load_public_key("ci")
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert info.keyid == hashlib.sha256(raw).hexdigest() == keys.keyid(pub)
    priv = keys.load_private_key("ci")
    assert keys.keyid(priv.public_key()) == info.keyid
    assert keys.keyid(keys.load_private_key(info.private).public_key()) == info.keyid  # a path works
    with pytest.raises(ProvscanError, match="already exists"):
        keys.new_key("ci")
    with pytest.raises(ProvscanError, match="invalid key name"):
        keys.new_key("../evil")


def test_passphrase_env_prompt_and_wrong(home, monkeypatch):
    info = keys.new_key("locked", passphrase="s3cret")
    assert info.encrypted and b"ENCRYPTED" in info.private.read_bytes()
    with pytest.raises(ProvscanError, match="PROVSCAN_KEY_PASSPHRASE"):
        keys.load_private_key("locked")
    assert keys.load_private_key("locked", passphrase="s3cret")
    assert keys.load_private_key("locked", prompt=lambda msg: "s3cret")
    monkeypatch.setenv("PROVSCAN_KEY_PASSPHRASE", "s3cret")
    assert keys.load_private_key("locked")
    monkeypatch.setenv("PROVSCAN_KEY_PASSPHRASE", "nope")
    with pytest.raises(ProvscanError, match="wrong passphrase"):
        keys.load_private_key("locked")


def test_missing_and_wrong_type_keys(home, tmp_path):
    with pytest.raises(ProvscanError, match="no such key"):
        keys.load_private_key("ghost")
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP384R1())
    pem = tmp_path / "ec.pem"
    pem.write_bytes(other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    with pytest.raises(ProvscanError, match="unsupported key type ECDSA secp384r1"):
        keys.load_private_key(pem)
    pub = tmp_path / "ec.pub"
    pub.write_bytes(other.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(ProvscanError, match="unsupported key type"):
        keys.load_public_key(pub)
    garbage = tmp_path / "g.pub"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ProvscanError, match="not a PEM public key"):
        keys.load_public_key(garbage)


def test_cli_new_and_list(home, run_cli, monkeypatch):
    res = run_cli("keys", "list")
    assert res.exit_code == 0 and "no keys" in res.output
    res = run_cli("keys", "new", "ci")
    assert res.exit_code == 0 and "unencrypted" in res.output
    res = run_cli("keys", "new", "locked", env={"PROVSCAN_KEY_PASSPHRASE": "pw"})
    assert res.exit_code == 0 and "encrypted" in res.output
    res = run_cli("keys", "list")
    lines = res.output.splitlines()
    assert [ln.split()[0] for ln in lines] == ["ci", "locked"]
    assert lines[0].split()[2] == "unencrypted" and lines[1].split()[2] == "encrypted"
    res = run_cli("keys", "new", "ci")
    assert res.exit_code == 2 and res.output.count("\n") == 1
    res = run_cli("keys", "new", "x", "--passphrase")  # no terminal, no env var
    assert res.exit_code == 2 and res.output.count("\n") == 1


def test_cli_list_reports_malformed_key_pairs(home, run_cli):
    import json

    assert run_cli("keys", "new", "good").exit_code == 0
    assert run_cli("keys", "new", "other").exit_code == 0
    d = keys.key_dir()
    (d / "broken.pub").write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    (d / "broken.key").write_bytes((d / "good.key").read_bytes())
    (d / "orphan.key").write_bytes((d / "good.key").read_bytes())
    (d / "mixed.pub").write_bytes((d / "good.pub").read_bytes())
    (d / "mixed.key").write_bytes((d / "other.key").read_bytes())
    res = run_cli("keys", "list")
    assert res.exit_code == 0
    assert [ln.split()[0] for ln in res.stdout.splitlines()] == ["good", "other"]
    problems = {ln.split()[0]: ln for ln in res.stderr.splitlines()}
    assert set(problems) == {"broken", "mixed", "orphan"}
    assert "not a PEM public key" in problems["broken"]
    assert "not the same key pair" in problems["mixed"]
    assert "has no orphan.pub" in problems["orphan"]
    listed = {e["name"]: e for e in json.loads(run_cli("keys", "list", "--json").stdout)}
    assert listed["good"]["error"] is None and listed["good"]["keyid"]
    assert all(listed[n]["error"] for n in ("broken", "mixed", "orphan"))
