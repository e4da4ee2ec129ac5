"""Endpoint budgets against real hostile HTTP servers on 127.0.0.1: a server that never answers,
one that drips a byte at a time, one that sends too much, one that nests JSON 10 MB deep.
Each gets an error (an inconclusive verdict through `verify`), quickly, never a hang or a crash."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from provscan.targets.endpoint import (
    EndpointClient,
    EndpointError,
    EndpointLimits,
    json_depth,
    parse_json_answer,
)

FAST = dict(connect_timeout_s=2.0, read_timeout_s=5.0, deadline_s=30.0)


def _read_request(conn: socket.socket) -> None:
    data = b""
    conn.settimeout(5)
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(rest) < length:
        rest += conn.recv(4096)


def _serve(conn: socket.socket, mode: str, stop: threading.Event) -> None:
    try:
        _read_request(conn)
        if mode == "hang":
            stop.wait(60)
        elif mode == "drip-body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
            while not stop.wait(0.2):
                conn.sendall(b" ")
        elif mode == "drip-headers":
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                if stop.wait(0.2):
                    break
                conn.sendall(bytes([byte]))
        elif mode == "huge":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
            block = b" " * 65536
            for _ in range(80):  # 5 MiB, no Content-Length
                if stop.is_set():
                    break
                conn.sendall(block)
        elif mode == "huge-declared":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n{")
            stop.wait(60)
        elif mode == "deep":
            body = b"[" * 10_000_000
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
    except OSError:
        pass
    finally:
        conn.close()


@contextmanager
def hostile_server(mode: str) -> Iterator[str]:
    """A raw HTTP server on 127.0.0.1 misbehaving as ``mode``; stopped (threads joined) on exit."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            t = threading.Thread(target=_serve, args=(conn, mode, stop), daemon=True)
            t.start()
            workers.append(t)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        stop.set()
        acceptor.join(5)
        for t in workers:
            t.join(5)
        listener.close()
        assert not acceptor.is_alive() and not any(t.is_alive() for t in workers)


def _client(url: str, retries: int = 0, **limits: float) -> EndpointClient:
    return EndpointClient(url, api_key="", retries=retries, limits=EndpointLimits(**{**FAST, **limits}))


def test_hanging_server_hits_the_read_timeout():
    with hostile_server("hang") as url:
        start = time.monotonic()
        with pytest.raises(EndpointError, match="timed out"):
            _client(url, retries=1, read_timeout_s=0.5).request("GET", "/models")
        assert time.monotonic() - start < 10


@pytest.mark.parametrize("mode", ["drip-body", "drip-headers"])
def test_slow_drip_is_cut_off_at_the_scan_deadline(mode):
    """A byte every 0.2 s never trips the 5 s read timeout; the 1 s scan deadline cuts it off."""
    with hostile_server(mode) as url:
        client = _client(url, retries=3, deadline_s=1.0)
        start = time.monotonic()
        with pytest.raises(EndpointError, match="deadline"):
            client.request("GET", "/models")
        assert time.monotonic() - start < 10
        with pytest.raises(EndpointError, match="deadline"):  # the deadline is for the whole scan
            client.request("GET", "/models")


@pytest.mark.parametrize("mode", ["huge", "huge-declared"])
def test_oversized_answers_are_refused(mode):
    with hostile_server(mode) as url:
        with pytest.raises(EndpointError, match="larger than 1048576 bytes"):
            _client(url, max_response_bytes=1024 * 1024).request("GET", "/models")


def test_ten_megabytes_of_brackets_is_an_error_not_a_recursion_error():
    with hostile_server("deep") as url:
        with pytest.raises(EndpointError, match="nested deeper than 64 levels"):
            _client(url).request("GET", "/models")


def test_json_depth_counts_outside_strings_only():
    assert json_depth(b'{"a": [1, {"b": "[[[[[[["}]}', 10) == 3
    assert json_depth(b'["\\"[[[["]', 10) == 1
    assert json_depth(b"[" * 1000, 5) == 6  # stops counting past the limit
    limits = EndpointLimits(max_json_depth=3)
    assert parse_json_answer(b"[[[1]]]", limits, "x") == [[[1]]]
    with pytest.raises(EndpointError):
        parse_json_answer(b"[[[[1]]]]", limits, "x")


@pytest.mark.parametrize("bad", [dict(deadline_s=0), dict(read_timeout_s=float("nan")),
                                 dict(max_response_bytes=0), dict(max_json_depth=1)])
def test_limits_are_validated(bad):
    from provscan.errors import ProvscanError

    with pytest.raises(ProvscanError):
        EndpointLimits(**bad)


@pytest.mark.parametrize("mode", ["deep", "drip-body"])
def test_verify_gives_an_inconclusive_verdict(mode, run_cli, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROVSCAN_ENDPOINT_DEADLINE_S", "1")
    monkeypatch.setenv("PROVSCAN_ENDPOINT_READ_TIMEOUT_S", "5")
    with hostile_server(mode) as url:
        res = run_cli("verify", url, "--format", "json")
    assert res.exit_code == 3, res.output
    assert "Traceback" not in res.output and "RecursionError" not in res.output
