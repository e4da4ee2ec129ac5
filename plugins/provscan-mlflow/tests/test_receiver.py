"""The receiver's HTTP layer in-process (no worker threads, no registry): answers and queue."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request

import pytest
from provscan_mlflow.gate import GateSettings
from provscan_mlflow.server import JsonLog, Receiver, ServeSettings
from provscan_mlflow.webhook import DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER

SECRET = "receiver-test-secret"


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def signed(data: dict, entity: str = "model_version", action: str = "created", secret: str = SECRET,
           delivery_id: str = "00000000-0000-4000-8000-000000000001", ts: int | None = None):
    from mlflow.webhooks.delivery import _generate_hmac_signature

    body = json.dumps({"entity": entity, "action": action, "timestamp": "x", "data": data})
    stamp = str(int(time.time()) if ts is None else ts)
    return body.encode(), {"Content-Type": "application/json", DELIVERY_ID_HEADER: delivery_id,
                           TIMESTAMP_HEADER: stamp,
                           SIGNATURE_HEADER: _generate_hmac_signature(secret, delivery_id, stamp, body)}


@pytest.fixture
def receiver(tmp_path):
    gate = GateSettings(tracking_uri="http://127.0.0.1:9", sign=("unused",))
    settings = ServeSettings(host="127.0.0.1", port=0, queue=tmp_path / "q.sqlite", secret=SECRET, gate=gate,
                             workers=0, grace=0)
    stream = io.StringIO()
    rec = Receiver(settings, JsonLog(stream))
    rec.start()
    rec.log_stream = stream
    yield rec
    rec.stop()


def test_receiver_answers(receiver):
    url = receiver.url + "/mlflow"
    body, headers = signed({"name": "clf", "version": "4", "source": "s", "run_id": None, "tags": {},
                            "description": None})
    assert post(url, body, headers) == (200, {"status": "queued", "job": 1})
    assert post(url, body, headers) == (200, {"status": "duplicate", "job": 1})
    forged_body = body.replace(b'"4"', b'"5"')
    assert post(url, forged_body, headers)[0] == 401
    stale_body, stale_headers = signed({"name": "clf", "version": "5"}, ts=int(time.time()) - 3600,
                                       delivery_id="00000000-0000-4000-8000-000000000002")
    status, doc = post(url, stale_body, stale_headers)
    assert status == 401 and "stale" in doc["reason"]
    # the gate's alias, set by someone else: scanned like any alias event
    own_body, own_headers = signed({"name": "clf", "alias": "certified", "version": "4"},
                                   entity="model_version_alias", delivery_id="00000000-0000-4000-8000-000000000003")
    assert post(url, own_body, own_headers) == (200, {"status": "joined", "job": 1})
    # ... set by the gate itself (it records the expectation first): not a new trigger
    receiver.queue.expect_alias("clf", "certified", "4")
    own_body, own_headers = signed({"name": "clf", "alias": "certified", "version": "4"},
                                   entity="model_version_alias", delivery_id="00000000-0000-4000-8000-000000000005")
    assert post(url, own_body, own_headers)[1]["status"] == "ignored"
    assert not receiver.queue.consume_expected_alias("clf", "certified", "4")  # used up
    other_body, other_headers = signed({"name": "clf", "alias": "champion", "version": "4"},
                                       entity="model_version_alias",
                                       delivery_id="00000000-0000-4000-8000-000000000004")
    assert post(url, other_body, other_headers) == (200, {"status": "joined", "job": 1})
    with urllib.request.urlopen(receiver.url + "/health", timeout=10) as resp:
        health = json.loads(resp.read())
    assert health["status"] == "ok" and health["jobs"]["pending"] == 1
    events = [json.loads(line)["event"] for line in receiver.log_stream.getvalue().splitlines()]
    assert events[0] == "receiver.started"
    assert events.count("delivery.rejected") == 2 and "delivery.duplicate" in events


def test_oversized_body_is_refused(receiver):
    status, doc = post(receiver.url + "/", b"x" * (65 * 1024), {"Content-Type": "application/json"})
    assert status == 413


@pytest.mark.parametrize("finishes", [True, False])
def test_graceful_stop_finishes_or_requeues(tmp_path, monkeypatch, finishes):
    """SIGTERM's path: a scan that ends within the grace period is done, one that does not is
    put back to pending (not counted as an attempt)."""
    import threading

    from provscan_mlflow import server
    from provscan_mlflow.gate import GateOutcome

    release = threading.Event()

    def slow_gate(settings, name, version, *args, **kwargs):
        release.wait(10)
        return GateOutcome(name, version, "pass", "ok", "p", None, None, "unchanged")

    monkeypatch.setattr(server, "gate_version", slow_gate)
    gate = GateSettings(tracking_uri="http://127.0.0.1:9", sign=("unused",))
    settings = ServeSettings(host="127.0.0.1", port=0, queue=tmp_path / "q.sqlite", secret=SECRET, gate=gate,
                             workers=1, grace=3.0 if finishes else 0.2, poll_s=0.05)
    rec = Receiver(settings, JsonLog(io.StringIO()))
    rec.queue.enqueue("clf", "1", "test")
    rec.start()
    deadline = time.monotonic() + 10
    while rec.busy == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rec.busy == 1
    if finishes:
        threading.Timer(0.3, release.set).start()
    rec.stop()
    release.set()
    from provscan_mlflow.queue import Queue

    jobs = Queue(tmp_path / "q.sqlite").jobs()
    expected = ("done", 1) if finishes else ("pending", 0)
    assert [(j["state"], j["attempts"]) for j in jobs] == [expected]


def test_text_log_lines():
    stream = io.StringIO()
    JsonLog(stream, as_json=False)("job.done", job=3, verdict="pass")
    line = stream.getvalue()
    assert line.endswith(" job.done job=3 verdict=pass\n") and line.count("\n") == 1
