"""Signed certificates: an in-toto Statement v1 in a DSSE envelope (Ed25519 or ECDSA P-256).

Signing: ``statement`` (dict) → canonical JSON bytes (the *payload*) → for each key,
``sign(PAE(payloadType, payload))`` (Ed25519, or ECDSA P-256 with SHA-256, DER-encoded, as DSSE and
Sigstore use it; :func:`provscan.keys.sign`) → envelope
``{"payload": b64(payload), "payloadType": ..., "signatures": [{"keyid": ..., "sig": b64(sig)}]}``
written as canonical JSON. ``PAE(type, body) = "DSSEv1" SP len(type) SP type SP len(body) SP body``
with byte lengths in ASCII decimal.

Verifying (:func:`verify_envelope`): the envelope's own JSON is parsed and checked strictly (exact
keys, canonical base64, canonical serialisation, so no byte of the file can change unnoticed);
the payload is decoded and the signature over PAE checked; only then is the payload parsed, once,
and the statement returned from that single parse. See docs/certificate.md for every field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from provscan.errors import ProvscanError
from provscan.keys import PrivateKey, PublicKey, keyid, sign, verify_signature

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://provscan.dev/attestation/scan/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
CERT_NAME = "certificate.intoto.json"


class CertificateError(ProvscanError):
    """A certificate failed a check; ``check`` names which (signature, schema, digest, ...)."""

    exit_code = 1

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII only: one byte string per value."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False, default=str).encode("ascii")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign_statement(statement: dict[str, Any], keys: list[PrivateKey],
                   payload_type: str = PAYLOAD_TYPE) -> bytes:
    """The envelope (canonical JSON bytes plus a newline) with one signature per key."""
    if not keys:
        raise ProvscanError("signing needs at least one key")
    payload = canonical_json(statement)
    message = pae(payload_type, payload)
    sigs = [{"keyid": keyid(k.public_key()), "sig": base64.b64encode(sign(k, message)).decode()}
            for k in keys]
    env = {"payload": base64.b64encode(payload).decode(), "payloadType": payload_type,
           "signatures": sigs}
    return canonical_json(env) + b"\n"


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise CertificateError("envelope", f"{what} is not a string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError("envelope", f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode() != text:
        raise CertificateError("envelope", f"{what} is not canonical base64")
    return raw


@dataclass(frozen=True)
class Verified:
    """A verified statement and the key ids whose signatures checked out."""

    statement: dict[str, Any]
    keyids: tuple[str, ...]
    payload: bytes

    @property
    def predicate(self) -> dict[str, Any]:
        return self.statement["predicate"]


def verify_envelope(data: bytes, public_keys: list[PublicKey],
                    required_signers: list[str] | tuple[str, ...] = (), strict: bool = True) -> Verified:
    """Verify a DSSE envelope; return the statement parsed once from the verified payload.

    Valid when at least one signature verifies under one of ``public_keys`` (matched by key id),
    every signature whose key id matches a given key verifies, and every key id in
    ``required_signers`` has a verified signature. ``strict`` also requires the envelope file to be
    in the canonical form provscan writes. Raises :class:`CertificateError` naming the check.
    """
    if not public_keys:
        raise ProvscanError("verification needs at least one public key")
    try:
        env = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CertificateError("envelope", "not a JSON DSSE envelope") from None
    if not isinstance(env, dict) or set(env) != {"payload", "payloadType", "signatures"}:
        raise CertificateError("envelope", "expected exactly payload, payloadType and signatures")
    if strict and data not in (canonical_json(env), canonical_json(env) + b"\n"):
        raise CertificateError("envelope", "not in canonical form (was the file edited?)")
    if not isinstance(env["payloadType"], str):
        raise CertificateError("envelope", "payloadType is not a string")
    if env["payloadType"] != PAYLOAD_TYPE:
        raise CertificateError("envelope", f"payloadType {env['payloadType']!r} is not {PAYLOAD_TYPE}")
    payload = _b64(env["payload"], "payload")
    sigs = env["signatures"]
    if not isinstance(sigs, list) or not sigs:
        raise CertificateError("envelope", "no signatures")
    trusted = {keyid(k): k for k in public_keys}
    message = pae(env["payloadType"], payload)
    good: list[str] = []
    for i, entry in enumerate(sigs):
        if not isinstance(entry, dict) or set(entry) - {"keyid", "sig"} or "sig" not in entry:
            raise CertificateError("envelope", f"signature {i} is malformed")
        kid = entry.get("keyid", "")
        sig = _b64(entry["sig"], f"signature {i}")
        if kid not in trusted:
            continue
        try:
            verify_signature(trusted[kid], sig, message)
        except InvalidSignature:
            raise CertificateError("signature", f"signature by key {kid[:16]} does not verify") from None
        good.append(kid)
    if not good:
        raise CertificateError("signature", "no signature by the given public key(s)")
    missing = [k for k in required_signers if k not in good]
    if missing:
        raise CertificateError("signers", f"required signer {missing[0][:16]} did not sign")
    try:
        statement = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CertificateError("payload", "signed payload is not JSON") from None
    check_statement(statement)
    return Verified(statement, tuple(good), payload)


def load_schema(name: str) -> dict[str, Any]:
    """A JSON schema shipped in ``provscan/schemas``."""
    return json.loads(resources.files("provscan.schemas").joinpath(name).read_text("utf-8"))


def check_statement(statement: Any) -> None:
    """The statement is in-toto v1 with a provscan predicate that validates against its schema."""
    import jsonschema

    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise CertificateError("statement", f"_type is not {STATEMENT_TYPE}")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise CertificateError("statement", f"unsupported predicateType {statement.get('predicateType')!r}")
    try:
        jsonschema.validate(statement, load_schema("statement.v1.json"))
        jsonschema.validate(statement["predicate"], load_schema("predicate.v1.json"))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise CertificateError("schema", f"{where}: {exc.message}") from None


def check_checkpoint(statement: dict[str, Any], checkpoint: Path) -> None:
    """Recompute the root digest of ``checkpoint`` and compare it with the subject's."""
    from provscan.digest import compute_manifest

    predicate = statement["predicate"]
    if not predicate["target"].get("fileDigest", True):
        raise CertificateError("digest", "the certificate is for an endpoint: no file digest to compare")
    manifest = compute_manifest(Path(checkpoint))
    want = statement["subject"][0]["digest"].get("sha256")
    if manifest.root_sha256 != want:
        raise CertificateError("digest", f"{checkpoint} has root digest {manifest.root_sha256[:16]}…, "
                                         f"the certificate names {str(want)[:16]}…")


def subject_for(location: str, manifest: Any, model_name: str | None) -> dict[str, Any]:
    """The in-toto subject: checkpoint name + root digest, or for an endpoint its identity."""
    if manifest is not None:
        return {"name": manifest.name, "digest": {"sha256": manifest.root_sha256}}
    ident = {"url": location, "model": model_name}
    return {"name": location + (f"#{model_name}" if model_name and "#" not in location else ""),
            "uri": location,
            "digest": {"sha256": hashlib.sha256(canonical_json(ident)).hexdigest()}}


def build_statement(result: Any) -> dict[str, Any]:
    """The in-toto statement for a :class:`provscan.scan.ScanResult`."""
    from provscan.evidence import _jsonable

    scan = result.scan
    target = scan.target
    model_name = getattr(target, "model_name", None) if target is not None else None
    policy = scan.policy
    claims, errors, unclear = [], [], []
    judged = {(j["detector"], j["claim"]) for j in getattr(result.verdict, "judged", [])}
    for ev in result.evidence:
        if ev.error is not None:
            errors.append({"detector": ev.detector, "detectorVersion": ev.detector_version,
                           "plugin": ev.plugin, "error": ev.error})
        for c in ev.claims:
            entry = {
                "detector": ev.detector, "detectorVersion": ev.detector_version, "plugin": ev.plugin,
                "claim": c.name, "nullHypothesis": c.null_hypothesis, "test": c.test,
                "exact": c.exact, "statistic": c.statistic, "pValue": c.p_value,
                "bound": None if c.bound is None else {"method": c.bound.method, "level": c.bound.level,
                                                       "lower": c.bound.lower, "upper": c.bound.upper},
                "alpha": c.alpha, "n": c.n, "counts": c.counts, "parameters": ev.params,
                "seeds": ev.seeds, "decision": c.decision.value if c.decision else "inconclusive",
                "summary": c.summary, "primary": c is ev.claim(),
                "judged": (ev.detector, c.name) in judged,
            }
            claims.append(entry)
            if entry["decision"] == "inconclusive":
                unclear.append({"detector": ev.detector, "claim": c.name, "reason": c.summary})
    predicate = {
        "tool": {"name": "provscan", "version": result.environment.get("provscan", "?")},
        "plugins": [{"distribution": d, "version": v} for d, v in sorted(getattr(result, "plugins", {}).items())],
        "target": {"location": scan.location, "kind": target.kind if target is not None else None,
                   "format": target.format if target is not None else None,
                   "fileDigest": scan.manifest is not None,
                   "model": model_name,
                   "manifest": scan.manifest.to_dict() if scan.manifest is not None else None,
                   "note": None if scan.manifest is not None else
                   "endpoint target: no file digest exists; the subject digest is sha256 of the "
                   "canonical JSON {url, model} and binds only the identity, not the weights"},
        "fileSafety": scan.safety.verdict.value if scan.safety is not None else None,
        "policy": {"name": policy.name, "origin": getattr(policy, "origin", "default"),
                   "sha256": hashlib.sha256(policy.source.encode("utf-8")).hexdigest()},
        "verdict": {"status": result.verdict.status, "exitCode": result.exit_code,
                    "reasons": list(result.verdict.reasons),
                    "warnings": list(getattr(result.verdict, "warnings", []))},
        "claims": claims,
        "errors": errors,
        "inconclusive": unclear,
        "seed": scan.seed,
        "startedOn": scan.started_at,
        "finishedOn": result.finished_at,
        "environment": {"device": _device(target), **result.environment},
    }
    subject = subject_for(scan.location, scan.manifest, model_name)
    return {"_type": STATEMENT_TYPE, "subject": [subject], "predicateType": PREDICATE_TYPE,
            "predicate": _jsonable(predicate)}


def _device(target: Any) -> str:
    dev = getattr(target, "device", None)
    return str(dev) if dev is not None else "none"
