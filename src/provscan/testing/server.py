"""A tiny local HTTP server that serves a target through the endpoint protocols (for tests).

Usage::

    from provscan.testing.server import serve_target

    with serve_target(lm_target, model_name="tiny-gpt2") as base_url:   # "http://127.0.0.1:PORT/v1"
        target = provscan.targets.endpoint.open_endpoint(base_url)      # or `provscan verify base_url`
        target.generate(["hello"], n=2, max_new_tokens=8, seed=0)

    with serve_target(classifier_target, scores=False, max_top_k=1) as base_url:
        ...  # a label-only API: POST {base_url}/classify

``serve_target(target, model_name="test-model", scores=True, max_top_k=None, chat_template=None,
extra_models=())`` binds 127.0.0.1 on an ephemeral port in a daemon thread and shuts down on exit.
:func:`start_server` takes the same arguments and returns the running server (``.base_url``,
``.state.requests`` — the number of requests served —, ``.close()``).

Served routes (all JSON):

- ``GET  /v1/models``: the OpenAI model list; each entry has a ``provscan`` object with ``kind``
  (and ``num_classes``, ``input_shape``, ``scores``, ``max_top_k`` for classifiers).
- ``POST /v1/completions``: ``prompt`` (str or list), ``n``, ``temperature``, ``max_tokens``,
  ``seed``, ``logprobs`` (int: top alternatives per token), ``echo`` (with ``max_tokens=0``:
  prompt log-probabilities). Any object with ``generate(prompts, n, temperature, max_new_tokens,
  seed)`` can be served; logprobs and echo need a local :class:`~provscan.targets.LMTarget`.
- ``POST /v1/chat/completions``: ``messages`` rendered with the tokenizer's chat template when it
  has one (or ``chat_template=callable(messages) -> str``), else the message contents joined by
  newlines (so one user message is exactly the prompt); ``logprobs`` (bool), ``top_logprobs``.
- ``POST /v1/classify``: the provscan classifier protocol (docs/targets.md).

Model calls are serialised by a lock, so seeded requests are reproducible.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import torch

from provscan.targets.endpoint import decode_array

MAX_BODY = 64 * 1024 * 1024


class BadRequest(Exception):
    pass


class TargetServer:
    """Holds the served target(s) and answers protocol requests (transport-independent)."""

    def __init__(self, target: Any, model_name: str = "test-model", scores: bool = True,
                 max_top_k: int | None = None, chat_template: Callable[[list[dict]], str] | None = None,
                 extra_models: tuple[tuple[str, Any], ...] = ()) -> None:
        self.targets = {model_name: target, **dict(extra_models)}
        self.scores = scores
        self.max_top_k = max_top_k
        self.chat_template = chat_template
        self.lock = threading.Lock()
        self.requests = 0

    # --- routing -----------------------------------------------------------------------------
    def handle(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        self.requests += 1
        path = path.split("?")[0].rstrip("/")
        if method == "GET" and path == "/v1/models":
            return {"object": "list", "data": [self._model_card(n, t) for n, t in self.targets.items()]}
        if method != "POST" or body is None:
            raise KeyError(path)
        route = {"/v1/completions": self.completions, "/v1/chat/completions": self.chat,
                 "/v1/classify": self.classify}.get(path)
        if route is None:
            raise KeyError(path)
        name = body.get("model")
        if name not in self.targets:
            raise BadRequest(f"unknown model {name!r}")
        with self.lock:
            return route(self.targets[name], body)

    def _model_card(self, name: str, target: Any) -> dict[str, Any]:
        kind = getattr(target, "kind", "causal-lm")
        ext: dict[str, Any] = {"kind": kind}
        if kind == "classifier":
            ext.update(num_classes=int(target.num_classes), input_shape=list(target.input_shape),
                       scores=self.scores, max_top_k=self.max_top_k or int(target.num_classes))
        return {"id": name, "object": "model", "created": 0, "owned_by": "provscan-testing",
                "provscan": ext}

    # --- LM routes ---------------------------------------------------------------------------
    def completions(self, target: Any, body: dict[str, Any]) -> dict[str, Any]:
        prompts = body.get("prompt")
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            raise BadRequest("prompt must be a string or a list of strings")
        n, temperature, max_tokens, seed = _sampling(body)
        logprobs = body.get("logprobs")
        if body.get("echo"):
            if max_tokens != 0:
                raise BadRequest("echo is supported with max_tokens=0 only")
            choices = [{"index": i, "text": p, "finish_reason": "length",
                        "logprobs": _prompt_logprobs(target, p)} for i, p in enumerate(prompts)]
            return _envelope("text_completion", body, choices)
        choices = []
        if logprobs is not None:
            top = _int(logprobs, "logprobs", 0, 20)
            for i, p in enumerate(prompts):
                for j, (text, lp, reason) in enumerate(
                        _sample_with_logprobs(target, p, n, temperature, max_tokens, seed + i, top)):
                    legacy = {"tokens": [t["token"] for t in lp],
                              "token_logprobs": [t["logprob"] for t in lp],
                              "top_logprobs": [{a["token"]: a["logprob"] for a in t["top_logprobs"]} for t in lp],
                              "text_offset": _offsets(p, lp)}
                    choices.append({"index": i * n + j, "text": text, "finish_reason": reason,
                                    "logprobs": legacy})
        else:
            outs = target.generate(prompts, n=n, temperature=temperature, max_new_tokens=max_tokens, seed=seed)
            for i, row in enumerate(outs):
                for j, text in enumerate(row):
                    choices.append({"index": i * n + j, "text": text, "finish_reason": "length",
                                    "logprobs": None})
        return _envelope("text_completion", body, choices)

    def chat(self, target: Any, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            raise BadRequest("messages must be a non-empty list of {role, content}")
        prompt = self._render(target, messages)
        n, temperature, max_tokens, seed = _sampling(body)
        choices = []
        if body.get("logprobs"):
            top = _int(body.get("top_logprobs", 0), "top_logprobs", 0, 20)
            for j, (text, lp, reason) in enumerate(
                    _sample_with_logprobs(target, prompt, n, temperature, max_tokens, seed, top)):
                choices.append({"index": j, "message": {"role": "assistant", "content": text},
                                "finish_reason": reason, "logprobs": {"content": lp}})
        else:
            row = target.generate([prompt], n=n, temperature=temperature, max_new_tokens=max_tokens, seed=seed)[0]
            choices = [{"index": j, "message": {"role": "assistant", "content": t},
                        "finish_reason": "length", "logprobs": None} for j, t in enumerate(row)]
        return _envelope("chat.completion", body, choices)

    def _render(self, target: Any, messages: list[dict[str, Any]]) -> str:
        if self.chat_template is not None:
            return self.chat_template(messages)
        tok = getattr(target, "tokenizer", None)
        if tok is not None and getattr(tok, "chat_template", None):
            return str(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        return "\n".join(m["content"] for m in messages)

    # --- classifier route --------------------------------------------------------------------
    def classify(self, target: Any, body: dict[str, Any]) -> dict[str, Any]:
        if getattr(target, "kind", None) != "classifier":
            raise BadRequest("this model is not a classifier")
        try:
            x = decode_array(body.get("inputs"))
        except (ValueError, TypeError) as exc:
            raise BadRequest(str(exc)) from None
        if tuple(x.shape[1:]) != tuple(target.input_shape):
            raise BadRequest(f"inputs must be shaped (N, {', '.join(map(str, target.input_shape))})")
        limit = self.max_top_k or int(target.num_classes)
        k = _int(body.get("top_k", 1), "top_k", 1, limit)
        idx, sc = target.predict_topk(x, k)
        want_scores = bool(body.get("return_scores", True)) and self.scores
        return {"object": "classification", "model": body["model"],
                "predictions": {"labels": np.asarray(idx).tolist(),
                                "scores": np.asarray(sc, dtype=np.float64).tolist() if want_scores else None}}


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadRequest(f"{name} must be an integer in {lo}..{hi}")
    return value


def _sampling(body: dict[str, Any]) -> tuple[int, float, int, int]:
    n = _int(body.get("n", 1), "n", 1, 128)
    temperature = body.get("temperature", 1.0)
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise BadRequest("temperature must be a non-negative number")
    max_tokens = _int(body.get("max_tokens", 16), "max_tokens", 0, 4096)
    seed = body.get("seed", 0)
    seed = 0 if seed is None else _int(seed, "seed", 0, 2**63 - 1)
    return n, float(temperature), max_tokens, seed


def _envelope(obj: str, body: dict[str, Any], choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"cmpl-{int(time.time() * 1000)}", "object": obj, "created": int(time.time()),
            "model": body["model"], "choices": choices,
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


def _offsets(prompt: str, lp: list[dict[str, Any]]) -> list[int]:
    out, pos = [], len(prompt)
    for t in lp:
        out.append(pos)
        pos += len(t["token"])
    return out


def _need_local(target: Any) -> tuple[Any, Any]:
    model, tok = getattr(target, "model", None), getattr(target, "tokenizer", None)
    if model is None or tok is None:
        raise BadRequest("logprobs need a local model")
    return model, tok


@torch.no_grad()
def _prompt_logprobs(target: Any, prompt: str) -> dict[str, Any]:
    """Per-token log-probabilities of a prompt under a causal LM (first token: None)."""
    model, tok = _need_local(target)
    if getattr(target, "kind", "causal-lm") != "causal-lm":
        raise BadRequest("echo needs a causal LM")
    enc = tok(prompt, return_offsets_mapping=True)
    ids = torch.tensor([enc["input_ids"]], device=target.device)
    lp = model(input_ids=ids).logits.float()[0].log_softmax(-1)
    values: list[float | None] = [None] + [float(lp[i - 1, ids[0, i]]) for i in range(1, ids.shape[1])]
    return {"tokens": [tok.decode([i]) for i in enc["input_ids"]], "token_logprobs": values,
            "top_logprobs": None, "text_offset": [int(a) for a, _ in enc["offset_mapping"]]}


@torch.no_grad()
def _sample_with_logprobs(target: Any, prompt: str, n: int, temperature: float, max_tokens: int,
                          seed: int, top: int) -> list[tuple[str, list[dict[str, Any]], str]]:
    """n samples of a prompt with the log-probability of each sampled token (untempered)."""
    model, tok = _need_local(target)
    torch.manual_seed(seed)
    enc = tok([prompt] * n, return_tensors="pt", padding=True).to(target.device)
    kw: dict[str, Any] = dict(max_new_tokens=max_tokens, do_sample=temperature > 0,
                              pad_token_id=tok.pad_token_id, output_logits=True, return_dict_in_generate=True)
    if temperature > 0:
        kw.update(temperature=temperature, top_k=0, top_p=1.0)
    out = model.generate(**enc, **kw)
    seqs = out.sequences
    if getattr(target, "kind", "causal-lm") == "causal-lm":
        seqs = seqs[:, enc["input_ids"].shape[1]:]
    else:
        seqs = seqs[:, 1:]  # drop the decoder start token
    logp = torch.stack(out.logits, 1).float().log_softmax(-1)
    results = []
    for r in range(n):
        tokens, reason = [], "length"
        for s in range(min(seqs.shape[1], logp.shape[1])):
            tid = int(seqs[r, s])
            if tid == tok.eos_token_id:
                reason = "stop"
                break
            alts = []
            if top:
                vals, ids = logp[r, s].topk(top)
                alts = [{"token": tok.decode([int(i)]), "logprob": float(v)} for v, i in zip(vals, ids)]
            tokens.append({"token": tok.decode([tid]), "logprob": float(logp[r, s, tid]), "top_logprobs": alts})
        text = tok.decode([int(t) for t in seqs[r, : len(tokens)]], skip_special_tokens=True)
        results.append((text.strip(), tokens, reason))
    return results


def _make_handler(server: TargetServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _dispatch(self, method: str) -> None:
            body = None
            try:
                if method == "POST":
                    length = int(self.headers.get("Content-Length") or 0)
                    if length > MAX_BODY:
                        raise BadRequest("request too large")
                    body = json.loads(self.rfile.read(length) or b"null")
                    if not isinstance(body, dict):
                        raise BadRequest("the body must be a JSON object")
                self._reply(200, server.handle(method, self.path, body))
            except KeyError:
                self._reply(404, {"error": {"message": f"no route {method} {self.path}", "type": "not_found"}})
            except (BadRequest, ValueError) as exc:
                self._reply(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
            except Exception as exc:  # noqa: BLE001 - a server error must answer, not hang
                self._reply(500, {"error": {"message": f"{type(exc).__name__}: {exc}", "type": "server_error"}})

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

    return Handler


class RunningServer:
    """A started server: ``base_url`` (ends in ``/v1``), ``state`` (the :class:`TargetServer`), ``close()``."""

    def __init__(self, state: TargetServer) -> None:
        self.state = state
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="provscan-test-server", daemon=True)
        self.thread.start()
        port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def start_server(target: Any, **kwargs: Any) -> RunningServer:
    """Start serving ``target`` (see :class:`TargetServer` for the options); call ``close()`` after."""
    return RunningServer(TargetServer(target, **kwargs))


@contextlib.contextmanager
def serve_target(target: Any, **kwargs: Any) -> Iterator[str]:
    """Serve ``target`` on 127.0.0.1 for the ``with`` block; yields the base URL ``http://127.0.0.1:PORT/v1``."""
    running = start_server(target, **kwargs)
    try:
        yield running.base_url
    finally:
        running.close()
