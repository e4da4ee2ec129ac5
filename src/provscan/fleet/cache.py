"""Result keys and the signed fleet record that makes a finished target skippable.

A result is keyed by sha256 of the canonical JSON of (target root digest, policy digest, every
detector that runs with its version and resolved parameters, seed). The driver writes, next to a
target's certificate, ``record.dsse.json``: a DSSE envelope (payload type
:data:`RECORD_TYPE`, signed with the same key as the certificate) over ``{key, certificateSha256,
location}``. A later run skips the target only when the record's signature verifies under the
signing key, its key equals the key computed now (so the files' digest, the policy, the detectors,
their versions and parameters and the seed are all unchanged), the certificate's bytes hash to the
recorded value, and the certificate itself verifies with its subject digest equal to the digest of
the files now on disk.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from provscan.certificate import CERT_NAME, CertificateError, canonical_json, pae, verify_envelope
from provscan.keys import PrivateKey, PublicKey, keyid, sign, verify_signature
from provscan.params import resolve_params

RECORD_NAME = "record.dsse.json"
RECORD_TYPE = "application/vnd.provscan.fleet-record+json"
FILE_SAFETY = "file-safety"


def scan_detector_ids(location: str, detectors: tuple[str, ...] | list[str], policy: Any,
                      local: bool) -> list[str]:
    """The detectors a scan of ``location`` runs: file-safety for local files, the selected ones
    and those the policy requires (as the scan pipeline does)."""
    implicit = [FILE_SAFETY] if local else []
    return list(dict.fromkeys([*implicit, *detectors, *policy.required_detectors()]))


def detector_parts(host: Any, ids: list[str], params: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """``[[id, version, resolved params], ...]`` sorted by id."""
    known = host.detectors()
    return [[did, known[did].version, resolve_params(did, known[did].params, params.get(did, {}))]
            for did in sorted(set(ids))]


def result_key(digest: str, policy_sha256: str, parts: list[list[Any]], seed: int) -> str:
    body = {"digest": digest, "policy": policy_sha256, "detectors": parts, "seed": seed}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def sign_record(key: str, certificate: bytes, location: str, signer: PrivateKey) -> bytes:
    payload = canonical_json({"key": key, "certificateSha256": hashlib.sha256(certificate).hexdigest(),
                              "location": location})
    sig = sign(signer, pae(RECORD_TYPE, payload))
    env = {"payload": base64.b64encode(payload).decode(), "payloadType": RECORD_TYPE,
           "signatures": [{"keyid": keyid(signer.public_key()), "sig": base64.b64encode(sig).decode()}]}
    return canonical_json(env) + b"\n"


def read_record(data: bytes, public_key: PublicKey) -> dict[str, Any] | None:
    """The record's payload when its signature verifies under ``public_key``, else None."""
    try:
        env = json.loads(data)
        if env["payloadType"] != RECORD_TYPE:
            return None
        payload = base64.b64decode(env["payload"], validate=True)
        want = keyid(public_key)
        for s in env["signatures"]:
            if s.get("keyid") == want:
                verify_signature(public_key, base64.b64decode(s["sig"], validate=True),
                                 pae(RECORD_TYPE, payload))
                record = json.loads(payload)
                return record if isinstance(record, dict) else None
    except (ValueError, KeyError, TypeError, InvalidSignature):
        return None
    return None


def cached_statement(folder: Path, key: str, digest: str,
                     public_key: PublicKey) -> dict[str, Any] | None:
    """The verified statement of ``folder`` when it holds a finished result for ``key`` whose
    subject digest is ``digest``; None when the target must be scanned (again)."""
    try:
        record_bytes = (folder / RECORD_NAME).read_bytes()
        cert = (folder / CERT_NAME).read_bytes()
    except OSError:
        return None
    record = read_record(record_bytes, public_key)
    if record is None or record.get("key") != key:
        return None
    if record.get("certificateSha256") != hashlib.sha256(cert).hexdigest():
        return None
    try:
        statement = verify_envelope(cert, [public_key]).statement
    except CertificateError:
        return None
    if statement["subject"][0]["digest"].get("sha256") != digest:
        return None
    return statement
