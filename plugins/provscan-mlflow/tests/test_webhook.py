"""Authenticating MLflow webhook deliveries: MLflow's own signer, forgeries, stale and replayed."""

from __future__ import annotations

import json
import time

import pytest
from provscan_mlflow.queue import Queue
from provscan_mlflow.webhook import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Rejected,
    check_delivery,
    sign,
)

SECRET = "whsec-test-0123456789"


def delivery(data: dict | None = None, entity: str = "model_version", action: str = "created",
             secret: str = SECRET, ts: int | None = None, delivery_id: str = "6f1c2d3e-0000-4000-8000-000000000001"):
    """Headers and body exactly as MLflow builds them (its own signing function)."""
    from mlflow.webhooks.delivery import _generate_hmac_signature

    doc = {"entity": entity, "action": action, "timestamp": "2026-01-01T00:00:00+00:00",
           "data": data if data is not None else {"name": "clf", "version": "3", "source": "runs:/x/model",
                                                  "run_id": "x", "tags": {}, "description": None}}
    body = json.dumps(doc)
    stamp = str(int(time.time()) if ts is None else ts)
    headers = {"Content-Type": "application/json", DELIVERY_ID_HEADER: delivery_id,
               TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: _generate_hmac_signature(secret, delivery_id, stamp, body)}
    return headers, body.encode()


def test_mlflow_signed_delivery_is_accepted_and_parsed():
    headers, body = delivery()
    d = check_delivery(headers, body, SECRET, time.time())
    assert (d.event, d.name, d.version, d.alias, d.handled) == ("model_version.created", "clf", "3", None, True)
    # our signer agrees with MLflow's, byte for byte
    assert sign(SECRET, headers[DELIVERY_ID_HEADER], headers[TIMESTAMP_HEADER], body) == headers[SIGNATURE_HEADER]


def test_alias_event_carries_alias_and_version():
    headers, body = delivery({"name": "clf", "alias": "champion", "version": "2"}, entity="model_version_alias")
    d = check_delivery(headers, body, SECRET, time.time())
    assert (d.event, d.alias, d.version) == ("model_version_alias.created", "champion", "2")


@pytest.mark.parametrize("tamper", ["wrong-secret", "body", "delivery-id", "timestamp", "no-signature",
                                    "bad-version", "garbage"])
def test_forged_deliveries_are_rejected(tamper):
    headers, body = delivery(secret="another-secret" if tamper == "wrong-secret" else SECRET)
    if tamper == "body":
        body = body.replace(b'"3"', b'"4"')
    elif tamper == "delivery-id":
        headers[DELIVERY_ID_HEADER] = "6f1c2d3e-0000-4000-8000-000000000002"
    elif tamper == "timestamp":
        headers[TIMESTAMP_HEADER] = str(int(headers[TIMESTAMP_HEADER]) - 1)
    elif tamper == "no-signature":
        del headers[SIGNATURE_HEADER]
    elif tamper == "bad-version":
        headers[SIGNATURE_HEADER] = "v2," + headers[SIGNATURE_HEADER].split(",", 1)[1]
    elif tamper == "garbage":
        headers[SIGNATURE_HEADER] = "v1,not base64!"
    with pytest.raises(Rejected) as err:
        check_delivery(headers, body, SECRET, time.time())
    assert err.value.status == 401


def test_stale_and_future_deliveries_are_rejected():
    now = time.time()
    for skew in (-301, 301):
        headers, body = delivery(ts=int(now) + skew)
        with pytest.raises(Rejected, match="stale") as err:
            check_delivery(headers, body, SECRET, now, tolerance=300)
        assert err.value.status == 401
    headers, body = delivery(ts=int(now) - 299)
    assert check_delivery(headers, body, SECRET, now, tolerance=300).version == "3"


def test_unhandled_event_is_authenticated_but_not_handled():
    headers, body = delivery({"name": "clf", "version": "1", "key": "k", "value": "v"},
                             entity="model_version_tag", action="set")
    d = check_delivery(headers, body, SECRET, time.time())
    assert not d.handled
    forged_headers, _ = delivery(secret="x")
    with pytest.raises(Rejected):
        check_delivery(forged_headers, body, SECRET, time.time())


@pytest.mark.parametrize("data", [{"version": "1"}, {"name": "clf"}, {"name": "clf", "version": "one"},
                                  {"name": 3, "version": "1"}])
def test_malformed_payloads_are_400(data):
    headers, body = delivery(data)
    with pytest.raises(Rejected) as err:
        check_delivery(headers, body, SECRET, time.time())
    assert err.value.status == 400


def test_replayed_delivery_queues_nothing(tmp_path):
    """A replay of an accepted delivery (same id, same signature) is recognised by the queue."""
    q = Queue(tmp_path / "q.sqlite")
    headers, body = delivery()
    d = check_delivery(headers, body, SECRET, time.time())
    assert q.accept(d.delivery_id, d.event, d.name, d.version)[0] == "queued"
    again = check_delivery(headers, body, SECRET, time.time())  # still fresh and validly signed
    assert q.accept(again.delivery_id, again.event, again.name, again.version)[0] == "duplicate"
    assert q.counts()["pending"] == 1


def test_empty_secret_refuses_everything():
    headers, body = delivery()
    with pytest.raises(Rejected) as err:
        check_delivery(headers, body, "", time.time())
    assert err.value.status == 500
