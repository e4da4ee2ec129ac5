"""Black-box targets behind HTTP: OpenAI-compatible LMs and the provscan classifier protocol.

Language models: any server speaking the OpenAI API (vLLM, TGI, Ollama, llama.cpp, the test
server in :mod:`provscan.testing.server`). ``generate`` uses ``POST /v1/completions`` (default) or
``POST /v1/chat/completions`` (``api="chat"``), sends requests concurrently and passes a seed
derived from the call's seed and the request number (servers that honour ``seed`` are then
reproducible for a fixed batch size). ``loglik`` uses ``/v1/completions`` with ``echo`` and
``logprobs`` and ``max_tokens=0`` (prompt log-probabilities, as vLLM serves them).

Classifiers: ``POST {base}/classify`` with float32 inputs in base64, answered with the top-k
labels and optionally their scores (see docs/targets.md for the wire format).

On the command line an endpoint is named by its base URL, e.g. ``http://127.0.0.1:8000/v1``; the
model is the URL fragment (``http://host:8000/v1#my-model``), ``OpenOptions.extra["model_name"]``,
or the only model listed by ``GET /v1/models``. ``PROVSCAN_ENDPOINT_API_KEY`` (or
``OPENAI_API_KEY``) is sent as a bearer token when set.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from provscan.errors import ProvscanError
from provscan.targets.base import ClassifierTarget, LMTarget

DEFAULT_TIMEOUT_S = 120.0
RETRY_STATUS = {429, 500, 502, 503, 504}
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class EndpointLimits:
    """Budgets for one scan of an endpoint: ``OpenOptions.extra["endpoint_limits"]``, else the
    ``PROVSCAN_ENDPOINT_*`` environment variables (:meth:`from_env`), else these defaults
    (docs/targets.md).

    ``connect_timeout_s``: to open a connection; ``read_timeout_s``: longest silence while waiting
    for the next bytes of an answer; ``deadline_s``: the whole scan, every request and retry
    together (a server that drips one byte at a time is cut off here);
    ``max_response_bytes``: one answer's body; ``max_json_depth``: nesting of an answer's JSON.
    """

    connect_timeout_s: float = 10.0
    read_timeout_s: float = DEFAULT_TIMEOUT_S
    deadline_s: float = 3600.0
    max_response_bytes: int = 64 * 1024 * 1024
    max_json_depth: int = 64

    @classmethod
    def from_env(cls) -> EndpointLimits:
        """Defaults overridden by ``PROVSCAN_ENDPOINT_CONNECT_TIMEOUT_S``, ``..._READ_TIMEOUT_S``,
        ``..._DEADLINE_S``, ``..._MAX_RESPONSE_BYTES`` and ``..._MAX_JSON_DEPTH``."""
        values: dict[str, Any] = {}
        for name, kind in (("connect_timeout_s", float), ("read_timeout_s", float),
                           ("deadline_s", float), ("max_response_bytes", int),
                           ("max_json_depth", int)):
            env = f"PROVSCAN_ENDPOINT_{name.upper()}"
            raw = os.environ.get(env)
            if raw:
                try:
                    values[name] = kind(raw)
                except ValueError:
                    raise ProvscanError(f"{env}={raw!r}: expected a {kind.__name__}") from None
        return cls(**values)

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "read_timeout_s", "deadline_s"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ProvscanError(f"endpoint {name} must be a positive number of seconds")
        if self.max_response_bytes < 1 or self.max_json_depth < 2:
            raise ProvscanError("endpoint max_response_bytes must be >= 1 and max_json_depth >= 2")


class EndpointError(ProvscanError):
    """The endpoint could not be reached or answered something that is not the protocol."""


class _Expired(Exception):
    """The scan's overall deadline passed while a request was in flight."""


def json_depth(raw: bytes, limit: int) -> int:
    """Deepest nesting of arrays/objects in ``raw`` (outside strings), counted up to ``limit + 1``
    in one linear pass, so that an answer nested too deep is refused before ``json.loads``."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parse_json_answer(raw: bytes, limits: EndpointLimits, what: str) -> Any:
    """An answer's JSON, refused (EndpointError) when nested deeper than the limit or malformed."""
    if json_depth(raw, limits.max_json_depth) > limits.max_json_depth:
        raise EndpointError(f"{what}: the answer is nested deeper than {limits.max_json_depth} levels")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise EndpointError(f"{what}: the answer is not JSON") from None


class EndpointClient:
    """A minimal JSON-over-HTTP client with retries and budgets (stdlib only).

    Every request honours :class:`EndpointLimits`: connect and read timeouts, a cap on the
    answer's size and JSON depth, and one deadline for the client's whole life (the scan): a
    watchdog closes the connection when it passes, whatever the server is doing.
    """

    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float | None = None,
                 retries: int = 3, limits: EndpointLimits | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        parsed = urllib.parse.urlsplit(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise EndpointError(f"{base_url}: not an http(s) URL")
        self._parsed = parsed
        self.api_key = api_key if api_key is not None else (
            os.environ.get("PROVSCAN_ENDPOINT_API_KEY") or os.environ.get("OPENAI_API_KEY"))
        limits = limits or EndpointLimits.from_env()
        if timeout_s is not None:
            limits = EndpointLimits(limits.connect_timeout_s, timeout_s, limits.deadline_s,
                                    limits.max_response_bytes, limits.max_json_depth)
        self.limits = limits
        self.timeout_s = limits.read_timeout_s
        self.retries = retries
        self.deadline = time.monotonic() + limits.deadline_s

    def _remaining(self, what: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise EndpointError(f"{what}: the scan's endpoint deadline of {self.limits.deadline_s:g} s "
                                f"has passed")
        return left

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        what = f"{method} {url}"
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.retries + 1):
            self._remaining(what)
            try:
                status, payload = self._once(method, path, data, headers)
            except _Expired:
                raise EndpointError(f"{what}: cut off at the scan's endpoint deadline of "
                                    f"{self.limits.deadline_s:g} s") from None
            except (OSError, http.client.HTTPException) as exc:
                if attempt < self.retries:
                    self._sleep(0.2 * 2**attempt)
                    continue
                reason = "timed out" if isinstance(exc, TimeoutError | socket.timeout) else exc
                raise EndpointError(f"{what}: cannot reach the endpoint ({reason})") from None
            if status in RETRY_STATUS and attempt < self.retries:
                self._sleep(0.2 * 2**attempt)
                continue
            if status >= 400:
                detail = _error_message(payload)
                raise EndpointError(f"{what}: HTTP {status} {detail}".strip())
            break
        out = parse_json_answer(payload, self.limits, what)
        if not isinstance(out, dict):
            raise EndpointError(f"{what}: the answer is not a JSON object")
        return out

    def _sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, self.deadline - time.monotonic())))

    def _once(self, method: str, path: str, data: bytes | None,
              headers: dict[str, str]) -> tuple[int, bytes]:
        """One HTTP exchange under the budgets: (status, body)."""
        p = self._parsed
        conn_cls = http.client.HTTPSConnection if p.scheme == "https" else http.client.HTTPConnection
        remaining = self._remaining(f"{method} {self.base_url}{path}")
        conn = conn_cls(p.hostname or "", p.port, timeout=min(self.limits.connect_timeout_s, remaining))
        expired = threading.Event()
        opened: list[socket.socket] = []  # http.client drops conn.sock once the answer owns it

        def cut_off() -> None:
            expired.set()
            for sock in opened:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        watchdog = threading.Timer(remaining, cut_off)
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.connect()
            if conn.sock is not None:
                opened.append(conn.sock)
                conn.sock.settimeout(self.limits.read_timeout_s)
                if expired.is_set():  # the deadline passed while connecting
                    raise _Expired()
            conn.request(method, (p.path or "") + path, body=data, headers=headers)
            resp = conn.getresponse()
            declared = resp.getheader("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > self.limits.max_response_bytes:
                raise EndpointError(f"{method} {self.base_url}{path}: the answer is larger than "
                                    f"{self.limits.max_response_bytes} bytes")
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk = resp.read1(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.limits.max_response_bytes:
                    raise EndpointError(f"{method} {self.base_url}{path}: the answer is larger than "
                                        f"{self.limits.max_response_bytes} bytes")
                chunks.append(chunk)
            status, body = resp.status, b"".join(chunks)
        except (OSError, http.client.HTTPException, ValueError):
            if expired.is_set():
                raise _Expired() from None
            raise
        finally:
            watchdog.cancel()
            conn.close()
            for sock in opened:
                sock.close()
        if expired.is_set():  # cut off: what was read is not the whole answer
            raise _Expired()
        return status, body


def _error_message(raw: bytes) -> str:
    try:
        err = json.loads(raw[:65536]).get("error", {})
        return str(err.get("message", "")) if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError, RecursionError):
        return raw[:200].decode("utf-8", "replace").splitlines()[0] if raw.strip() else ""


def list_models(client: EndpointClient) -> list[dict[str, Any]]:
    """The ``data`` list of ``GET /models``."""
    data = client.request("GET", "/models").get("data")
    if not isinstance(data, list):
        raise EndpointError(f"{client.base_url}/models: no model list in the answer")
    return [m for m in data if isinstance(m, dict)]


def request_seed(seed: int, index: int) -> int:
    """Seed sent with request number ``index`` of a call seeded ``seed`` (fits in 31 bits)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] & 0x7FFFFFFF)


class EndpointLMTarget(LMTarget):
    """An LM served over the OpenAI API. ``module``/``model`` are None (black-box)."""

    def __init__(self, client: EndpointClient, model_name: str, kind: str = "causal-lm",
                 api: str = "completions", max_workers: int = 8, **kwargs: Any) -> None:
        if api not in ("completions", "chat"):
            raise ProvscanError(f"unknown endpoint api {api!r} (completions or chat)")
        kwargs.setdefault("location", f"{client.base_url}#{model_name}")
        kwargs.setdefault("format", "openai-endpoint")
        super().__init__(None, None, kind=kind, **kwargs)
        self.client = client
        self.model_name = model_name
        self.api = api
        self.max_workers = max_workers
        self.info.setdefault("model_name", model_name)
        self.info.setdefault("api", api)

    def generate(self, prompts: list[str], n: int = 1, temperature: float = 1.0,
                 max_new_tokens: int = 64, seed: int = 0) -> list[list[str]]:
        if self.api == "chat":
            jobs = [[i] for i in range(len(prompts))]
        else:
            jobs = [list(range(s, min(s + self.batch_size, len(prompts))))
                    for s in range(0, len(prompts), self.batch_size)]

        def run(job_index: int) -> list[list[str]]:
            idx = jobs[job_index]
            return self._request_generate([prompts[i] for i in idx], n, temperature, max_new_tokens,
                                          request_seed(seed, job_index))

        results: list[list[str]] = [[] for _ in prompts]
        with ThreadPoolExecutor(max_workers=max(1, self.max_workers)) as pool:
            for idx, texts in zip(jobs, pool.map(run, range(len(jobs)))):
                for i, t in zip(idx, texts):
                    results[i] = t
        return results

    def _request_generate(self, prompts: list[str], n: int, temperature: float, max_new_tokens: int,
                          seed: int) -> list[list[str]]:
        common = {"model": self.model_name, "n": n, "temperature": temperature,
                  "max_tokens": max_new_tokens, "seed": seed}
        if self.api == "chat":
            body = {**common, "messages": [{"role": "user", "content": prompts[0]}]}
            choices = self.client.request("POST", "/chat/completions", body).get("choices")
            texts = _choice_texts(choices, 1, n, chat=True)
        else:
            body = {**common, "prompt": prompts}
            choices = self.client.request("POST", "/completions", body).get("choices")
            texts = _choice_texts(choices, len(prompts), n, chat=False)
        return [[t.strip() for t in row] for row in texts]

    def loglik(self, texts: list[str], contexts: list[str] | None = None) -> np.ndarray:
        """Sum of token log-probabilities of each text after its context (prompt logprobs)."""
        if self.kind != "causal-lm":
            raise NotImplementedError("loglik over an endpoint needs a causal LM (echo logprobs)")
        ctx = contexts or [""] * len(texts)

        def one(i: int) -> float:
            body = {"model": self.model_name, "prompt": ctx[i] + texts[i], "max_tokens": 0,
                    "echo": True, "logprobs": 0, "temperature": 0.0}
            choices = self.client.request("POST", "/completions", body).get("choices") or [{}]
            lp = (choices[0] or {}).get("logprobs") or {}
            offsets, values = lp.get("text_offset"), lp.get("token_logprobs")
            if not isinstance(offsets, list) or not isinstance(values, list):
                raise EndpointError("the endpoint does not return prompt logprobs (echo)")
            start = len(ctx[i])
            return float(sum(v for o, v in zip(offsets, values) if v is not None and o >= start))

        with ThreadPoolExecutor(max_workers=max(1, self.max_workers)) as pool:
            return np.array(list(pool.map(one, range(len(texts)))), dtype=np.float64)


def _choice_texts(choices: Any, n_prompts: int, n: int, chat: bool) -> list[list[str]]:
    if not isinstance(choices, list) or len(choices) != n_prompts * n:
        got = len(choices) if isinstance(choices, list) else "no"
        raise EndpointError(f"expected {n_prompts * n} choices from the endpoint, got {got}")
    out: list[list[str]] = [[] for _ in range(n_prompts)]
    for pos, c in enumerate(sorted(choices, key=lambda c: c.get("index", 0))):
        text = (c.get("message") or {}).get("content") if chat else c.get("text")
        if not isinstance(text, str):
            raise EndpointError("an endpoint choice has no text")
        out[pos // n].append(text)
    return out


def encode_array(x: np.ndarray) -> dict[str, Any]:
    """float32 little-endian C-order array → the wire form ``{"dtype", "shape", "data"}``."""
    a = np.ascontiguousarray(np.asarray(x, dtype="<f4"))
    return {"dtype": "float32", "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode()}


def decode_array(obj: Any, max_bytes: int = 256 * 1024 * 1024) -> np.ndarray:
    """Inverse of :func:`encode_array`; raises ValueError on anything malformed."""
    if not isinstance(obj, dict) or obj.get("dtype") != "float32":
        raise ValueError("inputs must be {'dtype': 'float32', 'shape': [...], 'data': base64}")
    shape = obj.get("shape")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise ValueError("inputs.shape must be a list of non-negative integers")
    raw = base64.b64decode(obj.get("data", ""), validate=True)
    if len(raw) > max_bytes or len(raw) != 4 * int(np.prod(shape, dtype=np.int64)):
        raise ValueError("inputs.data does not match inputs.shape")
    return np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)


class EndpointClassifierTarget(ClassifierTarget):
    """A classifier behind ``POST {base}/classify``: top-k labels, scores when the server gives them."""

    def __init__(self, client: EndpointClient, model_name: str, num_classes: int,
                 input_shape: tuple[int, ...], scores: bool = True, max_top_k: int | None = None,
                 max_workers: int = 4, **kwargs: Any) -> None:
        kwargs.setdefault("location", f"{client.base_url}#{model_name}")
        kwargs.setdefault("format", "classifier-endpoint")
        super().__init__(None, num_classes, input_shape, **kwargs)
        self.client = client
        self.model_name = model_name
        self.has_scores = scores
        self.max_top_k = max_top_k or num_classes
        self.max_workers = max_workers
        self.info.update(model_name=model_name, scores=scores, max_top_k=self.max_top_k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("this target has no weights (black-box endpoint)")

    def logits(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Log-scores of all classes (softmax-equivalent to logits) when the server returns scores."""
        if not self.has_scores or self.max_top_k < self.num_classes:
            raise NotImplementedError("the endpoint returns no full score vector")
        idx, scores = self.predict_topk(x, self.num_classes)
        out = np.full((len(idx), self.num_classes), -np.inf, dtype=np.float32)
        np.put_along_axis(out, idx, np.log(np.clip(scores, 1e-30, None)).astype(np.float32), axis=1)
        return out

    def predict_topk(self, x: np.ndarray | torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k labels ``(N, k)`` and scores ``(N, k)`` (NaN where the server gives none)."""
        if not 1 <= k <= self.max_top_k:
            raise ProvscanError(f"top-k {k} outside 1..{self.max_top_k} for this endpoint")
        arr = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x, dtype=np.float32)
        starts = list(range(0, len(arr), self.batch_size))

        def one(s: int) -> tuple[np.ndarray, np.ndarray]:
            chunk = arr[s : s + self.batch_size]
            body = {"model": self.model_name, "inputs": encode_array(chunk), "top_k": k,
                    "return_scores": self.has_scores}
            pred = self.client.request("POST", "/classify", body).get("predictions") or {}
            labels = np.asarray(pred.get("labels"), dtype=np.int64)
            if labels.shape != (len(chunk), k):
                raise EndpointError(f"/classify answered labels shaped {labels.shape}, expected {(len(chunk), k)}")
            sc = pred.get("scores")
            scores = (np.asarray(sc, dtype=np.float32) if sc is not None
                      else np.full(labels.shape, np.nan, dtype=np.float32))
            if scores.shape != labels.shape:
                raise EndpointError("/classify answered scores that do not match the labels")
            return labels, scores

        if not starts:
            return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
        with ThreadPoolExecutor(max_workers=max(1, self.max_workers)) as pool:
            parts = list(pool.map(one, starts))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def open_endpoint(location: str, model_name: str | None = None, kind: str | None = None,
                  batch_size: int = 64, api: str | None = None,
                  limits: EndpointLimits | None = None) -> EndpointLMTarget | EndpointClassifierTarget:
    """Open ``http(s)://host:port/v1[#model]`` as an LM or classifier endpoint target; every
    request of the scan runs under ``limits`` (defaults: :class:`EndpointLimits`)."""
    base, _, fragment = location.partition("#")
    client = EndpointClient(base, limits=limits)
    models = list_models(client)
    name = model_name or fragment or None
    if name is None:
        if len(models) != 1:
            ids = ", ".join(str(m.get("id")) for m in models) or "none"
            raise ProvscanError(f"{base} serves several models ({ids}); name one as {base}#MODEL")
        name = str(models[0].get("id"))
    meta = next((m for m in models if m.get("id") == name), None)
    if meta is None:
        raise ProvscanError(f"{base} does not serve model {name!r}")
    ext: dict[str, Any] = meta["provscan"] if isinstance(meta.get("provscan"), dict) else {}
    kind = kind or ext.get("kind") or "causal-lm"
    if kind == "classifier":
        try:
            num_classes, shape = int(ext["num_classes"]), tuple(int(s) for s in ext["input_shape"])
        except (KeyError, TypeError, ValueError):
            raise ProvscanError(f"{base}: model {name!r} does not describe its classes and input shape") from None
        return EndpointClassifierTarget(client, name, num_classes, shape, scores=bool(ext.get("scores", True)),
                                        max_top_k=ext.get("max_top_k"), batch_size=batch_size)
    if kind not in ("causal-lm", "seq2seq"):
        raise ProvscanError(f"{base}: unknown target kind {kind!r}")
    return EndpointLMTarget(client, name, kind=kind, api=api or ext.get("api", "completions"),
                            batch_size=batch_size)
