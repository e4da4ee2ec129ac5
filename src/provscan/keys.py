"""Signing keys (Ed25519, the default, or ECDSA P-256): PEM files in a key directory.

A key named NAME lives in ``key_dir()`` as ``NAME.key`` (PKCS#8 private key, mode 0600, encrypted
when a passphrase was given) and ``NAME.pub`` (SubjectPublicKeyInfo public key). ``key_dir()`` is
``$PROVSCAN_HOME/keys`` (default ``~/.provscan/keys``). Wherever a key is expected, a file path
works too; any PEM key of a supported type is accepted (one made by ``openssl`` or
``cryptography``, or the key pair model-signing uses).

Key ids (lowercase hex): Ed25519 = SHA-256 of the raw 32-byte public key (unchanged since the
first release); ECDSA P-256 = SHA-256 of the DER SubjectPublicKeyInfo. Signatures: Ed25519 (64
bytes) or ECDSA with SHA-256 over the message, DER-encoded (what DSSE, Sigstore and model-signing
use for ECDSA keys).

Passphrases come from ``PROVSCAN_KEY_PASSPHRASE`` or, on a terminal, a prompt; never from argv.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provscan.errors import ProvscanError
from provscan.fsutil import atomic_write_bytes

PASSPHRASE_ENV = "PROVSCAN_KEY_PASSPHRASE"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ED25519 = "ed25519"
ECDSA_P256 = "ecdsa-p256"
KEY_TYPES = (ED25519, ECDSA_P256)

PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey


class KeyFileError(ProvscanError):
    """A key could not be found, read or decrypted."""


def key_dir() -> Path:
    home = os.environ.get("PROVSCAN_HOME")
    return (Path(home) if home else Path.home() / ".provscan") / "keys"


def key_type(key: PrivateKey | PublicKey) -> str:
    """``ed25519`` or ``ecdsa-p256``; any other key is refused."""
    if isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
        return ED25519
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and \
            isinstance(key.curve, ec.SECP256R1):
        return ECDSA_P256
    what = f"ECDSA {key.curve.name}" if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) \
        else type(key).__name__
    raise KeyFileError(f"unsupported key type {what} (supported: {', '.join(KEY_TYPES)})")


def keyid(public_key: PublicKey) -> str:
    """SHA-256 hex of the raw Ed25519 key, or of the DER SubjectPublicKeyInfo of a P-256 key."""
    if key_type(public_key) == ED25519:
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = public_key.public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(raw).hexdigest()


def sign(private_key: PrivateKey, message: bytes) -> bytes:
    """Ed25519 signature, or DER-encoded ECDSA signature over SHA-256(message)."""
    if isinstance(private_key, Ed25519PrivateKey):
        return private_key.sign(message)
    key_type(private_key)
    return private_key.sign(message, ec.ECDSA(hashes.SHA256()))


def verify_signature(public_key: PublicKey, signature: bytes, message: bytes) -> None:
    """Raise :class:`cryptography.exceptions.InvalidSignature` unless ``signature`` is valid."""
    if isinstance(public_key, Ed25519PublicKey):
        public_key.verify(signature, message)
        return
    key_type(public_key)
    public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))


@dataclass(frozen=True)
class KeyInfo:
    name: str
    keyid: str
    encrypted: bool
    private: Path
    public: Path
    type: str = ED25519
    error: str | None = None  # why the pair is unusable (listed, never silently skipped)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise KeyFileError(f"invalid key name {name!r}: use letters, digits, '.', '_' or '-'")


def new_key(name: str, passphrase: str | None = None, directory: Path | None = None,
            type: str = ED25519) -> KeyInfo:
    """Create NAME.key (0600) and NAME.pub of ``type`` (``ed25519`` or ``ecdsa-p256``); refuses
    to overwrite an existing key."""
    _check_name(name)
    if type not in KEY_TYPES:
        raise KeyFileError(f"unknown key type {type!r} (supported: {', '.join(KEY_TYPES)})")
    d = Path(directory) if directory is not None else key_dir()
    priv_path, pub_path = d / f"{name}.key", d / f"{name}.pub"
    if priv_path.exists() or pub_path.exists():
        raise KeyFileError(f"key {name!r} already exists in {d}")
    key: PrivateKey = Ed25519PrivateKey.generate() if type == ED25519 else \
        ec.generate_private_key(ec.SECP256R1())
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
        else serialization.NoEncryption())
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write_bytes(pub_path, pub, mode=0o644)
    try:
        atomic_write_bytes(priv_path, priv, mode=0o600)
    except BaseException:
        pub_path.unlink(missing_ok=True)
        raise
    return KeyInfo(name, keyid(key.public_key()), bool(passphrase), priv_path, pub_path, type)


def list_keys(directory: Path | None = None) -> list[KeyInfo]:
    """Every key pair in the key directory, malformed ones included with ``error`` set: a public
    key that does not parse, a private key without its public key, or an unencrypted private key
    that does not parse or does not match its public key."""
    d = Path(directory) if directory is not None else key_dir()
    if not d.is_dir():
        return []
    names = sorted({p.stem for p in d.glob("*.pub")} | {p.stem for p in d.glob("*.key")})
    return [_key_info(d, name) for name in names]


def _key_info(d: Path, name: str) -> KeyInfo:
    priv_path, pub_path = d / f"{name}.key", d / f"{name}.pub"
    try:
        head = priv_path.read_bytes()[:64] if priv_path.exists() else b""
    except OSError as exc:
        return KeyInfo(name, "", False, priv_path, pub_path,
                       error=f"cannot read {priv_path.name}: {exc.strerror}")
    encrypted = b"ENCRYPTED" in head
    if not pub_path.exists():
        return KeyInfo(name, "", encrypted, priv_path, pub_path, error=f"{name}.key has no {name}.pub")
    try:
        pub = load_public_key(pub_path)
    except (ProvscanError, OSError) as exc:
        return KeyInfo(name, "", encrypted, priv_path, pub_path, error=_one_line(exc))
    kid = keyid(pub)
    if priv_path.exists() and not encrypted:
        try:
            priv = load_private_key(priv_path)
        except (ProvscanError, OSError) as exc:
            return KeyInfo(name, kid, False, priv_path, pub_path, key_type(pub), _one_line(exc))
        if keyid(priv.public_key()) != kid:
            return KeyInfo(name, kid, False, priv_path, pub_path, key_type(pub),
                           f"{name}.key and {name}.pub are not the same key pair")
    return KeyInfo(name, kid, encrypted, priv_path, pub_path, key_type(pub))


def _one_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _resolve(name_or_path: str | Path, suffix: str) -> Path:
    p = Path(name_or_path)
    if p.is_file():
        return p
    if isinstance(name_or_path, str) and _NAME.match(name_or_path):
        candidate = key_dir() / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate
    raise KeyFileError(f"no such key: {name_or_path} (not a file, nor a key in {key_dir()})")


def load_public_key(name_or_path: str | Path) -> PublicKey:
    """A public key from a PEM file or a key name (``NAME.pub`` in the key directory)."""
    path = _resolve(name_or_path, ".pub")
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 or ECDSA P-256 public key")
    _check_supported(key, path)
    return key


def load_private_key(name_or_path: str | Path, passphrase: str | None = None,
                     prompt: Callable[[str], str] | None = None) -> PrivateKey:
    """A private key from a PEM file or key name. An encrypted key takes ``passphrase``, else
    ``$PROVSCAN_KEY_PASSPHRASE``, else ``prompt(message)`` when given; otherwise it is an error."""
    path = _resolve(name_or_path, ".key")
    data = path.read_bytes()
    if b"PRIVATE KEY" not in data:
        raise KeyFileError(f"{path}: not a PEM private key")
    encrypted = b"ENCRYPTED" in data[:64]
    secret: bytes | None = None
    if encrypted:
        text = passphrase if passphrase is not None else os.environ.get(PASSPHRASE_ENV)
        if text is None and prompt is not None:
            text = prompt(f"passphrase for {path.name}")
        if not text:
            raise KeyFileError(f"{path} is encrypted: set {PASSPHRASE_ENV} or run on a terminal")
        secret = text.encode()
    try:
        key = serialization.load_pem_private_key(data, password=secret)
    except ValueError:
        what = "wrong passphrase for" if encrypted else "cannot read private key"
        raise KeyFileError(f"{what} {path}") from None
    except TypeError as exc:
        raise KeyFileError(f"{path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 or ECDSA P-256 private key")
    _check_supported(key, path)
    return key


def _check_supported(key: PrivateKey | PublicKey, path: Path) -> None:
    """``key_type``'s check (e.g. an ECDSA curve other than P-256), naming the file."""
    try:
        key_type(key)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None
