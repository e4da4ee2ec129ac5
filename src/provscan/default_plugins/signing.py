"""The built-in ``model-signing`` detector: verifies an OpenSSF model-signing signature.

``model.sig`` (a Sigstore bundle holding a DSSE envelope over model-signing's in-toto manifest)
is verified with the ``model_signing`` library, imported only here and only when installed, against
a trusted public key (``public_key``: a PEM file or a provscan key name; ECDSA P-256, as
``provscan keys new --type ecdsa-p256`` makes, or P-384/P-521) or a certificate chain
(``certificate_chain``). The claim is deterministic: *verified* (no evidence against H0) or *not
verified* (finding: a file changed, was added or removed, or the signature is not by the trusted
key). An unsigned model, a missing library or no trusted key is *inconclusive*, so a policy that
requires the detector fails closed. Keyless Sigstore (identity + OIDC issuer) needs the network
and is not offered. See docs/signing.md.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import provscan
from provscan.detectors import Detector
from provscan.evidence import Claim, Decision, Evidence
from provscan.params import Param

if TYPE_CHECKING:
    import numpy as np

SIGNATURE = "model.sig"
MAX_SIGNATURE_BYTES = 16 * 1024 * 1024  # a key-based bundle is a few KiB
NULL = ("the checkpoint's files are exactly those the trusted key signed in the model-signing "
        "signature")


class ModelSigningDetector(Detector):
    id = "model-signing"
    version = "0.1.0"
    description = ("Verifies the model-signing (OpenSSF) signature model.sig over the checkpoint's "
                   "files with a trusted public key or certificate chain.")
    applies_to = ("files",)
    params = (
        Param("public_key", str, "", "trusted public key: PEM file or provscan key name "
              "(ECDSA P-256, P-384 or P-521)", path=True),
        Param("certificate_chain", str, "", "instead of a key: PEM certificate chain file(s), "
              "comma-separated, for bundles signed with a certificate", path=True),
        Param("signature", str, SIGNATURE, "signature file; a relative path is inside the "
              "checkpoint directory (next to a single-file checkpoint)"),
    )

    def run(self, target: Any, params: dict[str, Any], rng: np.random.Generator) -> Evidence:
        model = Path(target.location)
        sig = Path(params["signature"])
        if not sig.is_absolute():
            sig = (model if model.is_dir() else model.parent) / sig
        details: dict[str, Any] = {"signature": str(sig)}
        if target.manifest is None:
            decision, summary, n = Decision.INCONCLUSIVE, "no local files (endpoint target)", 0
        else:
            decision, summary, n = _verify(model, sig, params, details)
        claim = Claim("signature", NULL, details.pop("test", "model-signing signature verification"),
                      statistic=None, p_value=None, alpha=0.0, n=n, exact=True,
                      counts={"signed_files": n}, decision=decision, summary=summary)
        return Evidence(self.id, self.version, self.plugin or "provscan", target.kind, [claim],
                        primary="signature", details=details)


def _verify(model: Path, sig: Path, params: dict[str, Any],
            details: dict[str, Any]) -> tuple[Decision, str, int]:
    key = params["public_key"]
    chain = [c.strip() for c in params["certificate_chain"].split(",") if c.strip()]
    if not sig.is_file():
        return Decision.INCONCLUSIVE, f"unsigned: no {sig.name} (nothing to verify)", 0
    if bool(key) == bool(chain):
        return (Decision.INCONCLUSIVE, "give exactly one of --param model-signing.public_key=PEM "
                "or --param model-signing.certificate_chain=PEM", 0)
    try:
        from model_signing import hashing, verifying
    except ImportError:
        return Decision.INCONCLUSIVE, "model_signing is not installed (pip install model-signing)", 0
    details["test"] = (f"model-signing {md.version('model-signing')} verification "
                       "(Sigstore bundle, DSSE, exact file manifest)")
    if sig.stat().st_size > MAX_SIGNATURE_BYTES:
        return Decision.FINDING, f"not verified: {sig.name} is larger than {MAX_SIGNATURE_BYTES} bytes", 0
    details["bundleKeyHint"] = _bundle_hint(sig)
    config = verifying.Config()
    if key:
        pub_path = _key_path(key)
        try:
            details["signer"] = _fingerprints(pub_path)
        except (OSError, ValueError, TypeError) as exc:
            return Decision.INCONCLUSIVE, f"cannot read public key {pub_path}: {exc}", 0
        config = config.use_elliptic_key_verifier(public_key=pub_path)
    else:
        details["signer"] = {"certificateChain": chain}
        config = config.use_certificate_verifier(certificate_chain=chain)
    # as `model_signing verify` does: git paths and the signature itself are not signed content
    ignored = [sig.resolve().relative_to(model.resolve())] if _inside(sig, model) else []
    config = config.set_hashing_config(
        hashing.Config().set_ignored_paths(paths=ignored, ignore_git_paths=True))
    try:
        config.verify(model, sig)
    except Exception as exc:  # noqa: BLE001 - model_signing raises many types for "not valid"
        text = re.sub(r"Digest\(algorithm='([^']*)', digest_value=b(['\"]).*?\2\)", r"<\1 digest>",
                      " ".join(str(exc).split()))[:600] or type(exc).__name__
        return Decision.FINDING, f"not verified: {text}", 0
    n = _signed_files(sig)
    who = details["signer"].get("keyid", "the certificate chain")
    return Decision.NO_EVIDENCE, f"verified: {n} file(s) signed by {who}", n


def _key_path(name_or_path: str) -> Path:
    """A PEM path, or ``NAME.pub`` in provscan's key directory."""
    from provscan.keys import key_dir

    p = Path(name_or_path)
    if not p.is_file() and (key_dir() / f"{name_or_path}.pub").is_file():
        return key_dir() / f"{name_or_path}.pub"
    return p


def _fingerprints(pub_path: Path) -> dict[str, str]:
    """``keyid`` = SHA-256 of the DER SubjectPublicKeyInfo (provscan's key id for a P-256 key);
    ``modelSigningHint`` = SHA-256 of its PEM text (the hint model-signing writes into bundles)."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(pub_path.read_bytes())
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return {"keyid": hashlib.sha256(key.public_bytes(serialization.Encoding.DER, spki)).hexdigest(),
            "modelSigningHint": hashlib.sha256(key.public_bytes(serialization.Encoding.PEM, spki)).hexdigest(),
            "publicKey": str(pub_path)}


def _bundle_hint(sig: Path) -> str | None:
    """The key hint the bundle names (informational; the verifier checks it)."""
    try:
        hint = json.loads(sig.read_bytes())["verificationMaterial"]["publicKey"]["hint"]
    except (ValueError, KeyError, TypeError):
        return None
    return hint if isinstance(hint, str) else None


def _inside(path: Path, model: Path) -> bool:
    return model.is_dir() and path.resolve().is_relative_to(model.resolve())


def _signed_files(sig: Path) -> int:
    """How many files the (verified) signature lists."""
    try:
        env = json.loads(sig.read_bytes())["dsseEnvelope"]
        return len(json.loads(base64.b64decode(env["payload"]))["predicate"]["resources"])
    except (ValueError, KeyError, TypeError):
        return 0


@provscan.hookimpl
def register_detectors() -> list[type[Detector]]:
    return [ModelSigningDetector]
