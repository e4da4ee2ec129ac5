"""Checking an MLflow webhook delivery: signature, timestamp, event (stdlib only).

MLflow (3.3+) sends each delivery as a POST with a JSON body and three headers:
``X-MLflow-Delivery-Id`` (a UUID, new per delivery, the same on MLflow's own HTTP retries),
``X-MLflow-Timestamp`` (Unix seconds, decimal) and, when the webhook has a secret,
``X-MLflow-Signature: v1,<base64 HMAC-SHA256(secret, f"{delivery_id}.{timestamp}.{body}")>``.
The body is ``{"entity", "action", "timestamp", "data"}``.

A delivery is accepted only when the signature verifies (constant-time comparison) and the
timestamp is within ``tolerance`` seconds of now; the delivery id is part of the signed content,
so a captured delivery cannot be replayed under a new id, and the queue remembers every accepted
id for longer than the tolerance window, so it cannot be replayed under its own id either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300
MAX_BODY_BYTES = 64 * 1024  # MLflow's payloads are a few hundred bytes
EVENTS = ("model_version.created", "model_version_alias.created")
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


class Rejected(Exception):
    """A delivery that must not be queued; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    """An authenticated delivery: who sent it when, which event, about which model version."""

    delivery_id: str
    timestamp: int
    event: str  # "entity.action"
    name: str
    version: str
    alias: str | None
    body: dict[str, Any]

    @property
    def handled(self) -> bool:
        return self.event in EVENTS


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The ``X-MLflow-Signature`` value MLflow computes for this delivery."""
    content = delivery_id.encode() + b"." + timestamp.encode() + b"." + body
    mac = hmac.new(secret.encode("utf-8"), content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(mac).decode()}"


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise Rejected(401, f"missing {name} header")
    return value.strip()


def check_signature(headers: Mapping[str, str], body: bytes, secret: str) -> tuple[str, int]:
    """``(delivery_id, timestamp)`` when the signature verifies; else :class:`Rejected` (401)."""
    delivery_id = _header(headers, DELIVERY_ID_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not _DELIVERY_ID.match(delivery_id):
        raise Rejected(401, "malformed delivery id")
    if not _TIMESTAMP.match(timestamp):
        raise Rejected(401, "malformed timestamp")
    version, _, mac_b64 = signature.partition(",")
    if version != SIGNATURE_VERSION:
        raise Rejected(401, f"unsupported signature version {version[:16]!r}")
    try:
        given = base64.b64decode(mac_b64, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(401, "malformed signature") from None
    expected = base64.b64decode(sign(secret, delivery_id, timestamp, body).partition(",")[2])
    if not hmac.compare_digest(given, expected):
        raise Rejected(401, "signature does not verify")
    return delivery_id, int(timestamp)


def check_delivery(headers: Mapping[str, str], body: bytes, secret: str, now: float,
                   tolerance: int = DEFAULT_TOLERANCE_S) -> Delivery:
    """Authenticate and parse one delivery; raises :class:`Rejected` with the HTTP status.

    Forged or unsigned → 401; timestamp older or newer than ``tolerance`` seconds → 401 (stale);
    a malformed body → 400. An authenticated event this gate does not handle is returned with
    ``handled`` False (the caller answers 200 and queues nothing). Replays of an accepted id are
    detected by the queue.
    """
    if not secret:
        raise Rejected(500, "the receiver has no webhook secret configured")
    if len(body) > MAX_BODY_BYTES:
        raise Rejected(413, "body too large")
    delivery_id, ts = check_signature(headers, body, secret)
    if abs(now - ts) > tolerance:
        raise Rejected(401, f"stale delivery: timestamp {ts} is {int(now - ts)} s from now "
                            f"(tolerance {tolerance} s)")
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "body is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        raise Rejected(400, "body is not an MLflow webhook payload")
    event = f"{doc.get('entity')}.{doc.get('action')}"[:128]
    if event not in EVENTS:
        return Delivery(delivery_id, ts, event, "", "", None, doc)
    data = doc["data"]
    name, version, alias = data.get("name"), data.get("version"), data.get("alias")
    if not isinstance(name, str) or not name or not isinstance(version, str | int):
        raise Rejected(400, "payload lacks the model name or version")
    version = str(version)
    if not version.isdigit():
        raise Rejected(400, "payload version is not a number")
    if alias is not None and not isinstance(alias, str):
        raise Rejected(400, "payload alias is not a string")
    return Delivery(delivery_id, ts, event, name, version, alias, doc)
