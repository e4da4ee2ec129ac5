"""DSSE as specified: the signature is over PAE(payloadType, payload), whatever the envelope's
JSON formatting or base64 alphabet; ``keyid`` is a hint; third-party envelopes verify."""

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner

from provscan.certificate import (
    MAX_SIGNATURES,
    PAYLOAD_TYPE,
    CertificateError,
    canonical_json,
    sign_statement,
    verify_envelope,
)
from provscan.keys import keyid


@pytest.fixture(scope="module")
def statement():
    """A schema-valid statement from a real scan of an empty-ish directory (no signing needed)."""
    import tempfile
    from pathlib import Path

    from provscan import api
    from provscan.plugins import new_host

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "model").mkdir()
        (Path(d) / "model" / "notes.json").write_text("{}")
        key = Ed25519PrivateKey.generate()
        res = api.verify(Path(d) / "model", formats=(), host=new_host(load_entry_points=False))
        from provscan.certificate import build_statement

        st = build_statement(res)
        verify_envelope(sign_statement(st, [key]), [key.public_key()])  # schema-valid
        return st


def _sslib_envelope(statement, key):
    env = Envelope(canonical_json(statement), PAYLOAD_TYPE, {})
    env.sign(CryptoSigner(key))
    return env


def test_envelope_signed_by_securesystemslib_verifies(statement):
    key = Ed25519PrivateKey.generate()
    env = _sslib_envelope(statement, key)
    sslib_keyid = next(iter(env.signatures))
    assert sslib_keyid != keyid(key.public_key())  # its own key id scheme
    data = json.dumps(env.to_dict()).encode()  # securesystemslib's layout: spaces, its key order
    v = verify_envelope(data, [key.public_key()])
    assert v.statement == statement and v.keyids == (keyid(key.public_key()),)
    with pytest.raises(CertificateError) as err:
        verify_envelope(data, [Ed25519PrivateKey.generate().public_key()])
    assert err.value.check == "signature"


def test_securesystemslib_verifies_provscan_envelopes(statement):
    key = Ed25519PrivateKey.generate()
    env = Envelope.from_dict(json.loads(sign_statement(statement, [key])))
    # securesystemslib matches signatures to keys by key id: give it provscan's
    from securesystemslib.signer import SSlibKey

    assert env.verify([SSlibKey.from_crypto(key.public_key(), keyid=keyid(key.public_key()))], 1)
    assert env.payload == canonical_json(statement)


def _reserialised(data: bytes) -> list[bytes]:
    env = json.loads(data)
    urlsafe = dict(env, payload=base64.urlsafe_b64encode(base64.b64decode(env["payload"])).decode(),
                   signatures=[dict(s, sig=base64.urlsafe_b64encode(base64.b64decode(s["sig"]))
                                    .decode().rstrip("=")) for s in env["signatures"]])
    reordered = {"signatures": env["signatures"], "payloadType": env["payloadType"],
                 "payload": env["payload"]}
    return [
        json.dumps(env, indent=2).encode(),
        json.dumps(env, indent="\t", sort_keys=False).encode() + b"\r\n",
        json.dumps(reordered, separators=(" , ", " : ")).encode(),
        json.dumps(env, ensure_ascii=True).replace('"payload"', '"\\u0070ayload"').encode(),
        json.dumps(urlsafe).encode(),
        json.dumps(dict(env, comment="producers may add fields")).encode(),
        json.dumps(dict(env, signatures=[{"sig": s["sig"]} for s in env["signatures"]])).encode(),
        json.dumps(dict(env, signatures=[dict(s, keyid="someone-else") for s in env["signatures"]])).encode(),
    ]


def test_reserialised_envelopes_verify(statement):
    key = Ed25519PrivateKey.generate()
    data = sign_statement(statement, [key])
    for variant in _reserialised(data):
        v = verify_envelope(variant, [key.public_key()])
        assert v.statement == statement and v.keyids == (keyid(key.public_key()),), variant[:80]


def test_keyid_is_a_hint_every_key_is_tried(statement):
    k1, k2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    env = json.loads(sign_statement(statement, [k1, k2]))
    env["signatures"] = [dict(s, keyid="") for s in env["signatures"]][::-1]
    v = verify_envelope(json.dumps(env).encode(), [k2.public_key(), k1.public_key()],
                        required_signers=[keyid(k1.public_key()), keyid(k2.public_key())])
    assert set(v.keyids) == {keyid(k1.public_key()), keyid(k2.public_key())}


@pytest.mark.parametrize("change", ["payload", "payloadType", "sig", "drop-signatures"])
def test_signed_content_changes_fail_in_any_layout(statement, change):
    key = Ed25519PrivateKey.generate()
    env = json.loads(sign_statement(statement, [key]))
    if change == "payload":
        raw = bytearray(base64.b64decode(env["payload"]))
        raw[-2] ^= 1
        env["payload"] = base64.b64encode(bytes(raw)).decode()
    elif change == "payloadType":
        env["payloadType"] = PAYLOAD_TYPE + " "
    elif change == "sig":
        raw = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
        raw[0] ^= 0x80
        env["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    else:
        env["signatures"] = []
    with pytest.raises(CertificateError):
        verify_envelope(json.dumps(env, indent=1).encode(), [key.public_key()])


@pytest.mark.parametrize("data", [
    b"[" * 10_000_000,
    b'{"payload": "", "payload": "", "payloadType": "x", "signatures": []}',
    b'{"payload": "!!", "payloadType": "x", "signatures": [{"sig": "AA=="}]}',
    b'{"payload": "", "payloadType": "x", "signatures": ' + json.dumps(
        [{"sig": "AA=="}] * (MAX_SIGNATURES + 1)).encode() + b"}",
    b"\xff\xfe",
])
def test_hostile_envelopes_are_invalid_not_crashes(data):
    with pytest.raises(CertificateError) as err:
        verify_envelope(data, [Ed25519PrivateKey.generate().public_key()])
    assert err.value.check == "envelope"


def test_duplicate_keys_in_the_signed_payload_are_refused():
    key = Ed25519PrivateKey.generate()
    payload = b'{"_type": "https://in-toto.io/Statement/v1", "_type": "x"}'
    from provscan.certificate import pae

    sig = base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode()
    env = {"payload": base64.b64encode(payload).decode(), "payloadType": PAYLOAD_TYPE,
           "signatures": [{"sig": sig}]}
    with pytest.raises(CertificateError) as err:
        verify_envelope(json.dumps(env).encode(), [key.public_key()])
    assert err.value.check == "payload"
