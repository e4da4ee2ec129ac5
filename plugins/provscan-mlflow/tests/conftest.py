"""Fixtures: a real ``mlflow server`` (SQLite backend, local artifact root) and a provscan receiver,
both on 127.0.0.1, started and always stopped by the fixtures."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

SECRET = "provscan-e2e-webhook-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.3)
    raise RuntimeError(f"{url} not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Stop a process started with ``start_new_session`` and everything it spawned."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` with a SQLite backend (webhooks need SQL) on a free 127.0.0.1 port."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {**os.environ,
           # the receiver is on 127.0.0.1 over http: MLflow refuses both by default (SSRF guard)
           "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true", "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
           "MLFLOW_WEBHOOK_CACHE_TTL": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = root / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
             "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{uri}/health", proc, 240, log)
        yield uri
    finally:
        stop_group(proc)


@dataclass
class Receiver:
    """A ``provscan mlflow serve`` subprocess (restartable on the same port and queue)."""

    args: list[str]
    env: dict[str, str]
    port: int
    queue: Path
    log: Path
    proc: subprocess.Popen | None = None
    starts: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts.append(len(self.lines()))
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=out, start_new_session=True)
        out.close()
        wait_http(f"{self.url}/health", self.proc, 120, self.log)

    def lines(self) -> list[dict]:
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict) and "event" in doc:
                    out.append(doc)
        return out

    def wait_log(self, pred, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for doc in self.lines():
                if pred(doc):
                    return doc
            time.sleep(0.05)
        raise AssertionError(f"no such log line within {timeout} s:\n{self.log.read_text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        stop_group(self.proc, sig)
        return self.proc.returncode


@pytest.fixture
def gate_home(tmp_path: Path) -> dict[str, str]:
    """A provscan home with an unencrypted signing key ``gate``; the env to run provscan in."""
    env = {**os.environ, "PROVSCAN_HOME": str(tmp_path / "home"), "PROVSCAN_QUIET": "1"}
    env.pop("PROVSCAN_KEY_PASSPHRASE", None)
    subprocess.run([sys.executable, "-m", "provscan", "keys", "new", "gate", "--no-passphrase"], env=env,
                   check=True, capture_output=True)
    return env


@pytest.fixture
def receiver(tmp_path: Path, mlflow_server: str, gate_home: dict[str, str]) -> Iterator[Receiver]:
    port = free_port()
    env = {**gate_home, "MLFLOW_TRACKING_URI": mlflow_server, "PROVSCAN_MLFLOW_WEBHOOK_SECRET": SECRET}
    queue = tmp_path / "queue.sqlite"
    args = [sys.executable, "-m", "provscan", "mlflow", "serve", "--sign", "gate", "--port", str(port),
            "--queue", str(queue), "--workers", "2", "--grace", "20"]
    rec = Receiver(args, env, port, queue, tmp_path / "receiver.log")
    try:
        yield rec
    finally:
        if rec.proc is not None:
            rec.stop(signal.SIGKILL)
