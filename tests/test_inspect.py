"""`provscan inspect`: formats, kind, tensors and verdict without loading anything."""

from __future__ import annotations

import json

import torch

from provscan.testing.tiny import save_tiny_hf


def test_inspect_hf_dir_json(tmp_path, run_cli):
    path = save_tiny_hf("gpt2", tmp_path / "g")
    res = run_cli("inspect", path, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["kind"] == "causal-lm" and info["verdict"] == "safe"
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), "pt") as f:
        expected = sum(f.get_tensor(k).numel() for k in f.keys())
    assert info["parameters"] == expected
    assert info["tensors"]["dtypes"] == {"float32": info["tensors"]["count"]}
    assert {f["format"] for f in info["files"]} == {"json", "safetensors"}


def test_inspect_torch_file_text(tmp_path, run_cli):
    torch.save({"w": torch.zeros(3, 4, dtype=torch.float16)}, tmp_path / "w.pt")
    res = run_cli("inspect", tmp_path / "w.pt")
    assert res.exit_code == 0, res.output
    assert "12 parameters in 1 tensors" in res.output and "SAFE" in res.output


def test_inspect_exit_codes(tmp_path, run_cli):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "full.pt")
    res = run_cli("inspect", tmp_path / "full.pt")
    assert res.exit_code == 1 and "UNSAFE" in res.output and "not on the allowlist" in res.output
    (tmp_path / "w.gguf").write_bytes(b"GGUF")
    res = run_cli("inspect", tmp_path / "w.gguf", "--json")
    assert res.exit_code == 3 and json.loads(res.output)["verdict"] == "inconclusive"
    res = run_cli("inspect", tmp_path / "missing")
    assert res.exit_code == 2 and res.output.count("\n") == 1


def test_inspect_does_not_modify_input(tmp_path, run_cli):
    torch.save({"w": torch.zeros(3)}, tmp_path / "w.pt")
    before = (tmp_path / "w.pt").read_bytes()
    run_cli("inspect", tmp_path / "w.pt", "--json")
    assert (tmp_path / "w.pt").read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]
