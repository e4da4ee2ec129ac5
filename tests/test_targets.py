"""Real tiny HF checkpoints and torch state dicts open as the right target kind, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from provscan.errors import ProvscanError, UnsafeCheckpointError
from provscan.targets import ClassifierTarget, LMTarget, OpenOptions, TextClassifierTarget
from provscan.testing.tiny import save_tiny_hf

CPU = OpenOptions(device="cpu", batch_size=4)


def _open(host, path, options=CPU):
    return host.hook.open_target(location=str(path), options=options, host=host)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {arch: save_tiny_hf(arch, root / arch) for arch in ("gpt2", "bart", "t5", "bert", "vit")}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.mark.parametrize("arch, kind", [("gpt2", "causal-lm"), ("bart", "seq2seq"), ("t5", "seq2seq")])
def test_language_models_open_and_generate(tiny_dirs, provscan_host, arch, kind):
    target = _open(provscan_host, tiny_dirs[arch])
    assert isinstance(target, LMTarget) and target.kind == kind
    assert target.info["parameters"] > 1000
    out = target.generate(["the cat sat", "hello world", "a dog"], n=2, temperature=1.0, max_new_tokens=5, seed=3)
    assert [len(r) for r in out] == [2, 2, 2]
    assert out == target.generate(["the cat sat", "hello world", "a dog"], n=2, max_new_tokens=5, seed=3)
    ll = target.loglik(["sat on the mat"], ["the cat "])
    assert ll.shape == (1,) and np.isfinite(ll).all() and ll[0] < 0


def test_bert_opens_as_text_classifier(tiny_dirs, provscan_host):
    target = _open(provscan_host, tiny_dirs["bert"])
    assert isinstance(target, TextClassifierTarget) and target.kind == "classifier"
    assert target.modality == "text" and target.num_classes == 3
    idx, scores = target.predict_topk(["the cat sat", "hello", "a dog ran in the park"], 2)
    assert idx.shape == (3, 2) and np.all(scores[:, 0] >= scores[:, 1])
    np.testing.assert_allclose(target.logits(["hello"]), target.logits(["hello", "the cat"])[:1], atol=1e-5)


def test_vit_opens_as_image_classifier(tiny_dirs, provscan_host):
    target = _open(provscan_host, tiny_dirs["vit"])
    assert isinstance(target, ClassifierTarget) and target.kind == "classifier"
    assert target.input_shape == (3, 8, 8) and target.num_classes == 3
    x = np.random.default_rng(0).random((5, 3, 8, 8), dtype=np.float32)
    idx, scores = target.predict_topk(x, 3)
    assert idx.shape == (5, 3)
    np.testing.assert_allclose(scores.sum(1), 1.0, atol=1e-5)
    grey = target.predict_topk(np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32), 1)[0]
    assert grey.shape == (2, 1)  # single channel and other sizes are adapted


def test_sharded_safetensors_dir(tmp_path, provscan_host):
    from transformers import AutoModelForCausalLM

    path = save_tiny_hf("gpt2", tmp_path / "g")
    model = AutoModelForCausalLM.from_pretrained(path)
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    for f in path.glob("tokenizer*"):
        (tmp_path / "sharded" / f.name).write_bytes(f.read_bytes())
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    target = _open(provscan_host, tmp_path / "sharded")
    assert target.kind == "causal-lm" and target.info["parameters"] == model.num_parameters()


def test_hf_dir_with_malicious_bin_is_refused_by_the_loader(tmp_path, provscan_host):
    path = save_tiny_hf("gpt2", tmp_path / "g", safe_serialization=False)
    state = torch.load(path / "pytorch_model.bin", weights_only=True)
    state["x"] = torch.nn.Linear(1, 1)  # a pickled module: not on the allowlist
    torch.save(state, path / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match="pytorch_model.bin"):
        _open(provscan_host, path)


def _cnn():
    from provscan.architectures import small_cnn

    m = small_cnn()
    m.num_classes, m.input_shape = 10, (1, 8, 8)
    return m


def test_state_dict_with_model_factory(tmp_path, provscan_host):
    torch.manual_seed(0)
    model = _cnn()
    torch.save(model.state_dict(), tmp_path / "cnn.pt")
    torch.save(model.state_dict(), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    expected = model.eval()(torch.as_tensor(x)).detach().numpy()
    for name in ("cnn.pt", "legacy.pth"):
        opts = OpenOptions(device="cpu", model_factory=f"{__name__}:_cnn")
        target = _open(provscan_host, tmp_path / name, opts)
        assert isinstance(target, ClassifierTarget) and target.input_shape == (1, 8, 8)
        np.testing.assert_allclose(target.logits(x), expected, rtol=1e-5, atol=1e-6)
    # a registered factory name works too (num_classes from the last Linear, shape from extra)
    opts = OpenOptions(device="cpu", model_factory="small-cnn", extra={"input_shape": [1, 8, 8]})
    assert _open(provscan_host, tmp_path / "cnn.pt", opts).num_classes == 10


def test_state_dict_errors(tmp_path, provscan_host):
    torch.save(_cnn().state_dict(), tmp_path / "cnn.pt")
    with pytest.raises(ProvscanError, match="needs --model-factory"):
        _open(provscan_host, tmp_path / "cnn.pt")
    with pytest.raises(ProvscanError, match="module:callable"):
        _open(provscan_host, tmp_path / "cnn.pt", OpenOptions(device="cpu", model_factory="nope"))
    with pytest.raises(ProvscanError, match="do not fit"):
        _open(provscan_host, tmp_path / "cnn.pt", OpenOptions(device="cpu", model_factory="mlp"))


def test_verify_cli_opens_factory_state_dict(tmp_path, run_cli):
    torch.save(_cnn().state_dict(), tmp_path / "cnn.pt")
    res = run_cli("verify", tmp_path / "cnn.pt", "--model-factory", f"{__name__}:_cnn", "--device", "cpu")
    assert res.exit_code == 0, res.output


def test_cuda_request_without_cuda_is_usage_error(tiny_dirs, provscan_host):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ProvscanError, match="CUDA"):
        _open(provscan_host, tiny_dirs["gpt2"], OpenOptions(device="cuda"))


@pytest.mark.gpu
def test_gpu_auto_device_and_bf16(tiny_dirs, provscan_host):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    target = _open(provscan_host, tiny_dirs["gpt2"], OpenOptions())
    assert target.device.type == "cuda" and target.dtype == torch.bfloat16
    assert len(target.generate(["the cat"], n=4, max_new_tokens=4)[0]) == 4


def test_tiny_builder_rejects_unknown_arch(tmp_path):
    with pytest.raises(ValueError):
        save_tiny_hf("llama9", Path(tmp_path) / "x")
