"""Signed certificates: an in-toto Statement v1 in a DSSE envelope (Ed25519 or ECDSA P-256).

Signing: ``statement`` (dict) → canonical JSON bytes (the *payload*) → for each key,
``sign(PAE(payloadType, payload))`` (Ed25519, or ECDSA P-256 with SHA-256, DER-encoded, as DSSE and
Sigstore use it; :func:`provscan.keys.sign`) → envelope
``{"payload": b64(payload), "payloadType": ..., "signatures": [{"keyid": ..., "sig": b64(sig)}]}``
written as canonical JSON. ``PAE(type, body) = "DSSEv1" SP len(type) SP type SP len(body) SP body``
with byte lengths in ASCII decimal.

Verifying (:func:`verify_envelope`) follows DSSE v1: the envelope is JSON in any formatting (key
order, whitespace, escapes; duplicate keys are refused; unknown fields ignored), payload and
signatures in standard or URL-safe base64. Each signature is checked over PAE(payloadType,
payload) against every trusted key (``keyid`` is only a hint); only then is the payload parsed,
once, and the statement returned from that single parse. Any change of the payload, the payload
type or a signature fails. See docs/certificate.md for every field.
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


MAX_ENVELOPE_BYTES = 64 * 1024 * 1024  # a certificate larger than this is refused unread
MAX_SIGNATURES = 64  # signatures per envelope (each is tried against every trusted key)


def _b64(text: Any, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not (DSSE allows both alphabets)."""
    if not isinstance(text, str):
        raise CertificateError("envelope", f"{what} is not a string")
    if not text.isascii():
        raise CertificateError("envelope", f"{what} is not valid base64")
    body = text.rstrip("=")
    padded = body + "=" * (-len(body) % 4)
    alphabet_urlsafe = "-" in body or "_" in body
    try:
        if alphabet_urlsafe:
            return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError("envelope", f"{what} is not valid base64") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise CertificateError("envelope", f"duplicate key {k!r}")
        out[k] = v
    return out


def _parse_envelope(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_ENVELOPE_BYTES:
        raise CertificateError("envelope", f"larger than {MAX_ENVELOPE_BYTES} bytes")
    try:
        env = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CertificateError("envelope", "not a JSON DSSE envelope") from None
    if not isinstance(env, dict) or not {"payload", "payloadType", "signatures"} <= set(env):
        raise CertificateError("envelope", "not a DSSE envelope (needs payload, payloadType and "
                                           "signatures)")
    return env


def _signature_verifies(key: PublicKey, sig: bytes, message: bytes) -> bool:
    """``sig`` is a valid signature of ``message`` under ``key`` (Ed25519 or ECDSA P-256/SHA-256)."""
    try:
        verify_signature(key, sig, message)
    except (InvalidSignature, ValueError, TypeError, ProvscanError):
        return False
    return True


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
                    required_signers: list[str] | tuple[str, ...] = ()) -> Verified:
    """Verify a DSSE envelope; return the statement parsed once from the verified payload.

    Every signature is tried against every key in ``public_keys`` (its ``keyid`` is a hint only).
    Valid when at least one signature verifies, no signature that names a trusted key id fails
    to verify, and every key id in ``required_signers`` has a verified signature. The returned
    ``keyids`` are those of the trusted keys that verified, computed from the keys themselves.
    Raises :class:`CertificateError` naming the failed check.
    """
    if not public_keys:
        raise ProvscanError("verification needs at least one public key")
    env = _parse_envelope(data)
    payload_type = env["payloadType"]
    if not isinstance(payload_type, str):
        raise CertificateError("envelope", "payloadType is not a string")
    payload = _b64(env["payload"], "payload")
    sigs = env["signatures"]
    if not isinstance(sigs, list) or not sigs:
        raise CertificateError("envelope", "no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise CertificateError("envelope", f"more than {MAX_SIGNATURES} signatures")
    trusted = {keyid(k): k for k in public_keys}
    message = pae(payload_type, payload)
    good: list[str] = []
    for i, entry in enumerate(sigs):
        if not isinstance(entry, dict) or "sig" not in entry:
            raise CertificateError("envelope", f"signature {i} is malformed")
        hint = entry.get("keyid") or ""
        sig = _b64(entry["sig"], f"signature {i}")
        matched = [kid for kid, key in trusted.items() if _signature_verifies(key, sig, message)]
        if not matched and hint in trusted:
            raise CertificateError("signature", f"signature by key {str(hint)[:16]} does not verify")
        good.extend(kid for kid in matched if kid not in good)
    if not good:
        raise CertificateError("signature", "no signature by the given public key(s)")
    if payload_type != PAYLOAD_TYPE:
        raise CertificateError("envelope", f"payloadType {payload_type!r} is not {PAYLOAD_TYPE}")
    missing = [k for k in required_signers if k not in good]
    if missing:
        raise CertificateError("signers", f"required signer {missing[0][:16]} did not sign")
    try:
        statement = json.loads(payload.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except CertificateError:
        raise CertificateError("payload", "signed payload has a duplicate key") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
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
    """Recompute the root digest of ``checkpoint`` and compare it with the subject's.

    Files matching the certificate's ``ignore`` globs are left out, as they were by the scan.
    """
    from provscan.digest import compute_manifest

    predicate = statement["predicate"]
    if not predicate["target"].get("fileDigest", True):
        raise CertificateError("digest", "the certificate is for an endpoint: no file digest to compare")
    ignore = tuple(str(g) for g in predicate["target"].get("ignore") or ())
    manifest = compute_manifest(Path(checkpoint), ignore=ignore)
    want = statement["subject"][0]["digest"].get("sha256")
    if manifest.root_sha256 != want:
        raise CertificateError("digest", f"{checkpoint} has root digest {manifest.root_sha256[:16]}…, "
                                         f"the certificate names {str(want)[:16]}…")


def subject_for(location: str, manifest: Any, model_name: str | None,
                identity: dict[str, str] | None = None) -> dict[str, Any]:
    """The in-toto subject (a ResourceDescriptor): checkpoint name + root digest, plus ``uri``
    (the location as given) and ``annotations`` (the pinned identity) when a ``resolve_location``
    hook resolved it; for an endpoint its identity."""
    if manifest is not None:
        subject: dict[str, Any] = {"name": manifest.name, "digest": {"sha256": manifest.root_sha256}}
        if identity:
            subject["uri"] = location
            subject["annotations"] = {str(k): str(v) for k, v in sorted(identity.items())}
        return subject
    ident = {"url": location, "model": model_name}
    return {"name": location + (f"#{model_name}" if model_name and "#" not in location else ""),
            "uri": location,
            "digest": {"sha256": hashlib.sha256(canonical_json(ident)).hexdigest()}}


def build_statement(result: Any) -> dict[str, Any]:
    """The in-toto statement for a :class:`provscan.scan.ScanResult`."""
    from provscan.digest import logical_location
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
        "target": {"location": logical_location(scan.location), "kind": target.kind if target is not None else None,
                   "format": target.format if target is not None else None,
                   "fileDigest": scan.manifest is not None,
                   "model": model_name,
                   "manifest": scan.manifest.to_dict() if scan.manifest is not None else None,
                   "ignore": list(getattr(scan.options, "ignore", ())),
                   "identity": dict(getattr(scan, "identity", {}) or {}),
                   "note": None if scan.manifest is not None else
                   "endpoint target: no file digest exists; the subject digest is sha256 of the "
                   "canonical JSON {url, model} and binds only the identity, not the weights"},
        "fileSafety": scan.safety.verdict.value if scan.safety is not None else None,
        "policy": {"name": policy.name, "origin": policy.public_origin,
                   "sha256": policy.sha256, "sourceSha256": policy.source_sha256,
                   "effective": policy.effective()},
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
    subject = subject_for(scan.location, scan.manifest, model_name, getattr(scan, "identity", None))
    return {"_type": STATEMENT_TYPE, "subject": [subject], "predicateType": PREDICATE_TYPE,
            "predicate": _jsonable(predicate)}


def _device(target: Any) -> str:
    dev = getattr(target, "device", None)
    return str(dev) if dev is not None else "none"
