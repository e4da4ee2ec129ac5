"""Verify a provscan certificate without provscan: only the standard library and `cryptography`.

usage: python verify_certificate.py CERT PUBKEY.pem [CHECKPOINT]
Exit 0 valid, 1 invalid. Prints the verdict and the claims on success.
"""

import base64
import hashlib
import json
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def pae(payload_type: bytes, payload: bytes) -> bytes:
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(payload), payload)


def root_digest(path: str) -> str:
    """sha256 of canonical JSON {"version": 1, "files": [{path, size, sha256} sorted by path]}."""
    if os.path.isfile(path):
        entries = [(os.path.basename(path), path)]
    else:
        entries = sorted((os.path.relpath(os.path.join(r, n), path).replace(os.sep, "/"), os.path.join(r, n))
                         for r, _, names in os.walk(path) for n in names)
    files = []
    for rel, full in entries:
        with open(full, "rb") as f:
            files.append({"path": rel, "size": os.path.getsize(full), "sha256": hashlib.sha256(f.read()).hexdigest()})
    body = json.dumps({"version": 1, "files": files}, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(body.encode()).hexdigest()


def main(cert: str, pubkey: str, checkpoint: str | None = None) -> int:
    with open(pubkey, "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    with open(cert, "rb") as f:
        envelope = json.load(f)
    payload = base64.b64decode(envelope["payload"], validate=True)
    message = pae(envelope["payloadType"].encode(), payload)
    ok = False
    for sig in envelope["signatures"]:  # the keyid is only a hint: try the key on every signature
        try:
            signature = base64.b64decode(sig["sig"], validate=True)
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
            else:
                key.verify(signature, message)
            ok = True
        except InvalidSignature:
            pass
    if not ok:
        print("invalid: no valid signature by this key")
        return 1
    statement = json.loads(payload)  # parsed only after the signature verified
    if statement["_type"] != "https://in-toto.io/Statement/v1":
        print("invalid: not an in-toto Statement v1")
        return 1
    subject = statement["subject"][0]
    if checkpoint is not None and root_digest(checkpoint) != subject["digest"]["sha256"]:
        print("invalid: checkpoint digest differs from the certificate's subject")
        return 1
    predicate = statement["predicate"]
    print(f"valid: {subject['name']} sha256:{subject['digest']['sha256']} verdict {predicate['verdict']['status']}")
    for claim in predicate["claims"]:
        print(f"  {claim['detector']}/{claim['claim']}: {claim['decision']} p={claim['pValue']} alpha={claim['alpha']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
