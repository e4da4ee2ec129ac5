"""``provscan mlflow serve``: receive MLflow webhooks, queue durably, scan with bounded workers.

- ``POST /`` (any path except ``/health``): one MLflow webhook delivery. 200 once recorded in the
  queue (or when it is a duplicate or an event this gate ignores), 401 forged / unsigned / stale,
  400 malformed, 413 too large, 503 while shutting down (MLflow retries 5xx with the same id).
- ``GET /health``: 200 ``{"status": "ok", "jobs": {...}, "workers": N}`` (503 while stopping).
- ``workers`` threads claim jobs and run :func:`provscan_mlflow.gate.gate_version`; transient
  registry errors are retried with exponential back-off up to ``max_attempts``.
- SIGTERM / SIGINT: stop accepting, let in-flight scans finish for up to ``grace`` seconds, then put
  whatever is still running back to ``pending`` and exit (the next start picks it up).
- Logs: one JSON object per line on stderr (``ts``, ``event`` and fields).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

from provscan_mlflow.gate import GateSettings, TransientError, gate_version
from provscan_mlflow.queue import Queue, lock_queue
from provscan_mlflow.webhook import DEFAULT_TOLERANCE_S, MAX_BODY_BYTES, Rejected, check_delivery

DELIVERY_RETENTION_S = 7 * 24 * 3600


class JsonLog:
    """One JSON object per line (or, with ``as_json=False``, ``event key=value ...``), thread-safe."""

    def __init__(self, stream: TextIO | None = None, as_json: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.as_json = as_json
        self._lock = threading.Lock()

    def __call__(self, event: str, **fields: Any) -> None:
        doc = {"ts": round(time.time(), 3), "event": event, **fields}
        if self.as_json:
            line = json.dumps(doc, default=str)
        else:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(doc.pop("ts")))
            line = f"{stamp} {doc.pop('event')} " + " ".join(f"{k}={v}" for k, v in doc.items())
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class JsonLogHandler(logging.Handler):
    """Python logging records (MLflow's warnings) as JSON lines in the same stream."""

    def __init__(self, log: JsonLog) -> None:
        super().__init__(logging.WARNING)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log("log", level=record.levelname.lower(), logger=record.name, message=record.getMessage())


def route_logging(log: JsonLog) -> None:
    """Send MLflow's (and everyone's) warnings through ``log``; drop their INFO chatter."""
    handler = JsonLogHandler(log)
    for name in ("mlflow", ""):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.WARNING)


@dataclass(frozen=True)
class ServeSettings:
    host: str
    port: int
    queue: Path
    secret: str
    gate: GateSettings
    workers: int = 2
    tolerance: int = DEFAULT_TOLERANCE_S
    grace: float = 30.0
    max_attempts: int = 5
    poll_s: float = 0.5


class Receiver:
    """The HTTP server, the queue and the worker threads of one ``serve`` process."""

    def __init__(self, settings: ServeSettings, log: JsonLog | None = None) -> None:
        self.settings = settings
        self.log = log or JsonLog()
        self.owner = f"{uuid.uuid4()}"
        self._lock_handle = lock_queue(settings.queue)
        self.queue = Queue(settings.queue)
        self.stopping = threading.Event()
        self.busy = 0
        self._busy_lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((settings.host, settings.port), _handler(self))
        self.httpd.daemon_threads = True
        self.threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        orphans = self.queue.requeue_orphans()
        pruned = self.queue.prune_deliveries(max(DELIVERY_RETENTION_S, 2 * self.settings.tolerance))
        self.log("receiver.started", url=self.url, queue=str(self.settings.queue),
                 workers=self.settings.workers, requeued=orphans, pruned_deliveries=pruned,
                 registry=self.settings.gate.tracking_uri, alias=self.settings.gate.alias,
                 policy=self.settings.gate.policy, jobs=self.queue.counts())
        for i in range(self.settings.workers):
            t = threading.Thread(target=self._work, name=f"provscan-worker-{i}", daemon=True)
            t.start()
            self.threads.append(t)
        t = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                             name="provscan-http", daemon=True)
        t.start()
        self._http_thread = t

    def stop(self) -> None:
        """Stop taking work, wait up to ``grace`` s for running scans, requeue the rest."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.log("receiver.stopping", in_flight=self.busy, grace_s=self.settings.grace)
        self.httpd.shutdown()
        self.httpd.server_close()
        deadline = time.monotonic() + self.settings.grace
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        requeued = self.queue.release(self.owner)
        self.log("receiver.stopped", requeued=requeued, jobs=self.queue.counts())
        if not any(t.is_alive() for t in self.threads):
            # A scan still running past the grace period keeps its (released) queue handle: its
            # late finish() finds the job back in pending and changes nothing.
            self.queue.close()
            self._lock_handle.close()

    def serve_until_signal(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully."""
        done = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            self.log("receiver.signal", signal=signal.Signals(signum).name)
            done.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        while not done.wait(0.5):
            pass
        self.stop()

    # ------------------------------------------------------------------ HTTP
    def handle_delivery(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        if self.stopping.is_set():
            return 503, {"status": "stopping"}
        try:
            d = check_delivery(headers, body, self.settings.secret, time.time(), self.settings.tolerance)
        except Rejected as exc:
            self.log("delivery.rejected", status=exc.status, reason=exc.reason,
                     delivery_id=str(headers.get("X-MLflow-Delivery-Id", ""))[:64])
            return exc.status, {"status": "rejected", "reason": exc.reason}
        if not d.handled:
            fresh = self.queue.record_ignored(d.delivery_id, d.event)
            self.log("delivery.ignored", delivery_id=d.delivery_id, mlflow_event=d.event, duplicate=not fresh)
            return 200, {"status": "ignored", "event": d.event}
        if (d.event == "model_version_alias.created" and d.alias == self.settings.gate.alias
                and self.queue.consume_expected_alias(d.name, d.alias, d.version)):
            # The gate set this alias itself after a pass: not a new trigger. Anyone else setting
            # the gate's alias gets that version scanned like any alias event.
            fresh = self.queue.record_ignored(d.delivery_id, d.event)
            self.log("delivery.ignored", delivery_id=d.delivery_id, mlflow_event=d.event,
                     reason="set by this gate", duplicate=not fresh)
            return 200, {"status": "ignored", "event": d.event}
        status, job_id = self.queue.accept(d.delivery_id, d.event, d.name, d.version)
        self.log(f"delivery.{status}", delivery_id=d.delivery_id, mlflow_event=d.event, model=d.name,
                 version=d.version, alias=d.alias, job=job_id)
        return 200, {"status": status, "job": job_id}

    def health(self) -> tuple[int, dict[str, Any]]:
        if self.stopping.is_set():
            return 503, {"status": "stopping"}
        return 200, {"status": "ok", "workers": self.settings.workers, "busy": self.busy,
                     "jobs": self.queue.counts()}

    # ------------------------------------------------------------------ workers
    def _work(self) -> None:
        while not self.stopping.is_set():
            job = self.queue.claim(self.owner)
            if job is None:
                self.stopping.wait(self.settings.poll_s)
                continue
            with self._busy_lock:
                self.busy += 1
            try:
                self._run(job)
            finally:
                with self._busy_lock:
                    self.busy -= 1

    def _run(self, job: Any) -> None:
        start = time.monotonic()
        self.log("job.started", job=job.id, model=job.name, version=job.version, attempt=job.attempts,
                 trigger=job.trigger)
        try:
            outcome = gate_version(self.settings.gate, job.name, job.version, job.scan_run_id,
                                   on_run=lambda run_id: self.queue.set_scan_run(job.id, run_id),
                                   scan_key=f"{self.queue.id}/{job.id}",
                                   before_alias=self.queue.expect_alias)
        except TransientError as exc:
            delay = min(300.0, 2.0 ** job.attempts)
            state = self.queue.retry_later(job.id, self.owner, str(exc), delay, self.settings.max_attempts)
            self.log("job.retry" if state == "pending" else "job.failed", job=job.id, model=job.name,
                     version=job.version, error=str(exc), retry_in_s=delay if state == "pending" else None)
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the worker
            state = self.queue.retry_later(job.id, self.owner, f"{type(exc).__name__}: {exc}", 60.0,
                                           self.settings.max_attempts)
            self.log("job.crashed", job=job.id, model=job.name, version=job.version,
                     error=f"{type(exc).__name__}: {exc}", state=state)
            return
        verdict = outcome.verdict if outcome is not None else "gone"
        if not self.queue.finish(job.id, self.owner, verdict):
            self.log("job.lost", job=job.id)
            return
        fields = outcome.as_dict() if outcome is not None else {"model": job.name, "version": job.version,
                                                                "verdict": "gone"}
        self.log("job.done", job=job.id, duration_s=round(time.monotonic() - start, 3), **fields)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "provscan-mlflow"
        sys_version = ""
        timeout = 30

        def _send(self, status: int, doc: dict[str, Any]) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?", 1)[0] == "/health":
                self._send(*receiver.health())
            else:
                self._send(404, {"status": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._send(411, {"status": "rejected", "reason": "Content-Length required"})
                return
            if length < 0 or length > MAX_BODY_BYTES:
                self._send(413, {"status": "rejected", "reason": "body too large"})
                return
            body = self.rfile.read(length)
            try:
                self._send(*receiver.handle_delivery(self.headers, body))
            except Exception as exc:  # noqa: BLE001 - answer 500 so MLflow retries
                receiver.log("delivery.error", error=f"{type(exc).__name__}: {exc}")
                self._send(500, {"status": "error"})

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler
