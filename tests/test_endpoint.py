"""The endpoint targets against the local test server (OpenAI-compatible LM, classifier protocol)."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
import torch

from provscan.architectures import small_cnn
from provscan.errors import ProvscanError
from provscan.targets import ClassifierTarget, LMTarget
from provscan.targets.endpoint import EndpointClassifierTarget, EndpointLMTarget, open_endpoint
from provscan.testing.server import serve_target, start_server
from provscan.testing.tiny import save_tiny_hf


@pytest.fixture(scope="module")
def local_lm(tmp_path_factory):
    import transformers

    path = save_tiny_hf("gpt2", tmp_path_factory.mktemp("ep") / "gpt2")
    model = transformers.AutoModelForCausalLM.from_pretrained(path)
    tok = transformers.AutoTokenizer.from_pretrained(path)
    return LMTarget(model, tok, location=str(path), format="hf-dir", batch_size=4)


@pytest.fixture(scope="module")
def local_cnn():
    torch.manual_seed(0)
    return ClassifierTarget(small_cnn(), 10, (1, 8, 8), location="mem", format="test", batch_size=16)


def _post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def test_lm_endpoint_generate_is_seeded_and_batched(local_lm):
    prompts = ["the cat", "hello world", "a dog", "please answer", "my model"]
    with serve_target(local_lm, model_name="tiny") as url:
        target = open_endpoint(url)
        assert isinstance(target, EndpointLMTarget) and target.kind == "causal-lm"
        assert target.module is None
        a = target.generate(prompts, n=3, temperature=1.0, max_new_tokens=6, seed=1)
        b = target.generate(prompts, n=3, temperature=1.0, max_new_tokens=6, seed=1)
        c = target.generate(prompts, n=3, temperature=1.0, max_new_tokens=6, seed=2)
    assert a == b and a != c
    assert [len(r) for r in a] == [3] * len(prompts)
    assert all(isinstance(t, str) for row in a for t in row) and any(t for row in a for t in row)


def test_greedy_endpoint_matches_local_target(local_lm):
    prompts = ["the cat", "hello world"]
    local = local_lm.generate(prompts, n=1, temperature=0.0, max_new_tokens=5)
    with serve_target(local_lm) as url:
        remote = open_endpoint(url).generate(prompts, n=1, temperature=0.0, max_new_tokens=5)
        chat = EndpointLMTarget(open_endpoint(url).client, "test-model", api="chat")
        chat_out = chat.generate(prompts, n=1, temperature=0.0, max_new_tokens=5)
    assert remote == local == chat_out


def test_endpoint_loglik_matches_local(local_lm):
    texts, ctx = ["sat on the mat", "ran in the park"], ["the cat ", "a dog "]
    with serve_target(local_lm) as url:
        remote = open_endpoint(url).loglik(texts, ctx)
    np.testing.assert_allclose(remote, local_lm.loglik(texts, ctx), rtol=1e-4)


def test_logprobs_in_completions_and_chat(local_lm):
    with serve_target(local_lm, model_name="m") as url:
        out = _post(url + "/completions", {"model": "m", "prompt": ["the cat"], "max_tokens": 4,
                                            "logprobs": 2, "n": 2, "seed": 3})
        chat = _post(url + "/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                                 "max_tokens": 3, "logprobs": True, "top_logprobs": 3})
    assert len(out["choices"]) == 2
    lp = out["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"])
    assert all(v <= 0 for v in lp["token_logprobs"])
    content = chat["choices"][0]["logprobs"]["content"]
    assert content and all(len(t["top_logprobs"]) == 3 for t in content)
    # the sampled token can never be more likely than the best alternative
    assert all(t["logprob"] <= t["top_logprobs"][0]["logprob"] + 1e-6 for t in content)


def test_classifier_endpoint_topk_matches_local(local_cnn):
    x = np.random.default_rng(0).random((37, 1, 8, 8), dtype=np.float32)
    idx, sc = local_cnn.predict_topk(x, 3)
    with serve_target(local_cnn, model_name="cnn") as url:
        target = open_endpoint(url)
        assert isinstance(target, EndpointClassifierTarget) and target.kind == "classifier"
        assert target.num_classes == 10 and target.input_shape == (1, 8, 8)
        ridx, rsc = target.predict_topk(x, 3)
        full = target.logits(x[:4])
    np.testing.assert_array_equal(ridx, idx)
    np.testing.assert_allclose(rsc, sc, rtol=1e-5)
    np.testing.assert_array_equal(full.argmax(1), local_cnn.logits(x[:4]).argmax(1))


def test_label_only_classifier_endpoint(local_cnn):
    x = np.random.default_rng(1).random((5, 1, 8, 8), dtype=np.float32)
    server = start_server(local_cnn, model_name="cnn", scores=False, max_top_k=1)
    try:
        target = open_endpoint(server.base_url)
        idx, sc = target.predict_topk(x, 1)
        assert np.isnan(sc).all()
        np.testing.assert_array_equal(idx, local_cnn.predict_topk(x, 1)[0])
        with pytest.raises(ProvscanError, match="top-k"):
            target.predict_topk(x, 2)
        with pytest.raises(NotImplementedError):
            target.logits(x)
        assert server.state.requests >= 2
    finally:
        server.close()


def test_bad_requests_are_rejected(local_cnn, local_lm):
    with serve_target(local_cnn, model_name="cnn", extra_models=(("lm", local_lm),)) as url:
        with pytest.raises(ProvscanError, match="several models"):
            open_endpoint(url)
        with pytest.raises(ProvscanError, match="does not serve"):
            open_endpoint(url + "#nope")
        target = open_endpoint(url + "#cnn")
        with pytest.raises(ProvscanError, match="HTTP 400"):
            target.client.request("POST", "/classify", {"model": "cnn", "inputs": {"dtype": "float32",
                                                                                  "shape": [1, 2], "data": ""}})
        with pytest.raises(ProvscanError, match="HTTP 404"):
            target.client.request("POST", "/nothing", {"model": "cnn"})


def test_unreachable_endpoint_is_one_line_error(run_cli):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ProvscanError, match="cannot reach"):
        open_endpoint(f"http://127.0.0.1:{port}/v1")


def test_verify_cli_accepts_an_endpoint_url(local_cnn, run_cli):
    with serve_target(local_cnn, model_name="cnn") as url:
        res = run_cli("verify", url + "#cnn", "--format", "json")
    # No file to scan and no detector selected: nothing was checked, which is never a pass.
    assert res.exit_code == 3, res.output
    assert "cannot reach" not in res.output and "no installed opener" not in res.output
    assert "nothing was checked" in res.output
