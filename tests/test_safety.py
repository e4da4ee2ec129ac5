"""File-safety scan: malicious checkpoints are refused without running anything; benign twins pass."""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from provscan.safety import SafetyVerdict, scan_path
from provscan.safety.pickle_scan import analyse_pickle
from provscan.safety.safetensors_check import validate


def _helpers():
    import importlib.util

    if "malicious_checkpoints" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "malicious_checkpoints", Path(__file__).with_name("malicious_checkpoints.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules["malicious_checkpoints"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["malicious_checkpoints"]


_m = _helpers()
MALICIOUS, LIVE = _m.MALICIOUS, _m.LIVE
# The digest refuses links inside a checkpoint as an input error (exit 2) before any verdict.
VERIFY_INPUT_ERROR = {"symlink_to_outside_payload"}


@pytest.mark.parametrize("shape", sorted(MALICIOUS))
def test_malicious_checkpoint_refused_by_inspect_and_verify(shape, tmp_path, run_cli):
    canary = tmp_path / "CANARY"
    target = MALICIOUS[shape](tmp_path / "ckpt", canary)
    assert scan_path(target).verdict != SafetyVerdict.SAFE
    res = run_cli("inspect", target, "--json")
    assert res.exit_code in (1, 3), res.output
    assert json.loads(res.output)["verdict"] in ("unsafe", "inconclusive")
    res = run_cli("verify", target)
    assert res.exit_code != 0, res.output
    assert res.exit_code != 2 or shape in VERIFY_INPUT_ERROR, res.output
    assert not canary.exists()


def test_at_least_twelve_distinct_shapes():
    assert len(MALICIOUS) >= 12


@pytest.mark.parametrize("shape", sorted(k for k, v in LIVE.items() if v))
def test_payloads_are_live_when_loaded_unsafely(shape, tmp_path):
    """Control: the fixtures really execute when loaded the unsafe way (in a subprocess)."""
    canary = tmp_path / "CANARY"
    path = MALICIOUS[shape](tmp_path / "ckpt", canary)
    subprocess.run([sys.executable, "-c", LIVE[shape], str(path)], check=False, capture_output=True, timeout=120,
                   cwd=Path(__file__).parent)
    assert canary.exists()


def test_benign_torch_save_is_safe_and_summarised(tmp_path):
    sd = {"w": torch.randn(3, 4), "b": torch.zeros(5, dtype=torch.bfloat16), "i": torch.arange(4),
          "v": torch.randn(4, 4)[:, 1], "p": torch.nn.Parameter(torch.ones(2))}
    for legacy in (False, True):
        path = tmp_path / f"sd{legacy}.pt"
        torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
        report = scan_path(path)
        f = report.files[0]
        assert report.verdict == SafetyVerdict.SAFE, f.findings
        assert f.format == ("torch-legacy" if legacy else "torch-zip")
        assert f.info["tensors"] == 5
        assert f.info["parameters"] == 12 + 5 + 4 + 4 + 2
        assert f.info["dtypes"] == {"float32": 3, "bfloat16": 1, "int64": 1}


def test_module_state_dict_and_nested_containers_are_safe(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Linear(4, 3))
    torch.save({"state_dict": model.state_dict(), "epoch": 3, "names": ["a", "b"], "lr": 0.1,
                "blob": b"\x00\x01"}, tmp_path / "ckpt.pth")
    report = scan_path(tmp_path / "ckpt.pth")
    assert report.verdict == SafetyVerdict.SAFE, report.files[0].findings


def test_full_module_pickle_is_refused(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "full.pt")
    f = scan_path(tmp_path / "full.pt").files[0]
    assert f.verdict == SafetyVerdict.UNSAFE and "torch.nn.modules.linear.Linear" in f.findings[0]


def test_allowlisted_value_cannot_be_called():
    data = b"\x80\x02ctorch\nFloatStorage\nK\x05\x85R."
    a = analyse_pickle(data)
    assert a.verdict == "unsafe" and "only as a value" in a.unsafe[0]


def test_codecs_encode_only_with_latin1():
    ok = pickle.dumps(b"\x00\xff", protocol=2)
    assert analyse_pickle(ok).verdict == "safe"
    bad = ok.replace(b"latin1", b"rot_13")
    assert analyse_pickle(bad).verdict == "unsafe"


def test_truncated_and_garbage_pickles_are_inconclusive(tmp_path):
    good = pickle.dumps({"a": [1, 2, 3]}, protocol=4)
    assert analyse_pickle(good).verdict == "safe"
    assert analyse_pickle(good[:-3]).verdict == "inconclusive"
    (tmp_path / "x.bin").write_bytes(b"\x80\x02\xff\xfe garbage")
    assert scan_path(tmp_path / "x.bin").verdict == SafetyVerdict.INCONCLUSIVE


def test_unknown_files_are_inconclusive_never_safe(tmp_path):
    (tmp_path / "weights.gguf").write_bytes(b"GGUF\x03\x00")
    (tmp_path / "config.json").write_text("{}")
    report = scan_path(tmp_path)
    assert report.verdict == SafetyVerdict.INCONCLUSIVE
    (tmp_path / "weights.gguf").unlink()
    (tmp_path / "config.json").write_text("{not json")
    assert scan_path(tmp_path).verdict == SafetyVerdict.INCONCLUSIVE


def test_memo_read_before_write_is_inconclusive():
    data = b"\x80\x04h\x07."
    assert analyse_pickle(data).verdict == "inconclusive"


def test_tensor_view_outside_its_storage_is_refused(tmp_path):
    torch.save({"w": torch.zeros(4)}, tmp_path / "a.pt")
    import zipfile

    z = zipfile.ZipFile(tmp_path / "a.pt")
    pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    # size (4,) -> (9,): the view would read past the 4-element storage
    bad = pkl.replace(b"K\x04\x85", b"K\x09\x85", 1)
    assert bad != pkl
    a = analyse_pickle(bad, torch_mode=True)
    assert a.verdict == "unsafe" and "reaches element" in a.unsafe[0]


# --- safetensors ----------------------------------------------------------------------------
def _st(header: dict, data_len: int) -> dict:
    return validate(header, data_len)


def test_safetensors_accepts_real_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(3, 2), "b": torch.ones(4, dtype=torch.float16), "e": torch.zeros(0)},
              str(tmp_path / "m.safetensors"))
    f = scan_path(tmp_path / "m.safetensors").files[0]
    assert f.verdict == SafetyVerdict.SAFE, f.findings
    assert f.info["tensors"] == 3 and f.info["parameters"] == 10 and f.info["bytes"] == 32


@pytest.mark.parametrize("header, n, message", [
    ({"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}, 4, "unknown dtype"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, 4, "needs 8 bytes"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}, 8, "needs 4 bytes"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, 8, "unreferenced bytes"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, 6, "trailing bytes"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, 4, "overlaps"),
    ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, 4, "non-negative"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 40]}}, 4, "outside"),
    ({"__metadata__": {"k": 1}}, 0, "__metadata__"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}}, 4, "exactly"),
])
def test_safetensors_header_problems(header, n, message):
    with pytest.raises(ValueError, match=message):
        _st(header, n)


def test_safetensors_length_and_duplicate_keys(tmp_path):
    p = tmp_path / "m.safetensors"
    p.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    assert "out of bounds" in scan_path(p).files[0].findings[0]
    hdr = b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}'
    p.write_bytes(struct.pack("<Q", len(hdr)) + hdr + b"\x00")
    assert "duplicate" in scan_path(p).files[0].findings[0]
    p.write_bytes(b"\x01\x00")
    assert scan_path(p).verdict == SafetyVerdict.UNSAFE


def test_hf_bin_saved_like_transformers_is_safe_and_loads(tmp_path):
    from provscan.default_plugins.loaders import open_hf_dir
    from provscan.targets import OpenOptions
    from provscan.testing.tiny import save_tiny_hf

    path = save_tiny_hf("gpt2", tmp_path / "gpt2", safe_serialization=False)
    assert (path / "pytorch_model.bin").exists() and not (path / "model.safetensors").exists()
    assert scan_path(path).verdict == SafetyVerdict.SAFE
    target = open_hf_dir(path, OpenOptions(device="cpu"))
    assert target.kind == "causal-lm"
    assert len(target.generate(["the cat"], n=2, max_new_tokens=3)[0]) == 2


def test_force_no_weights_only_env_refuses_loading(tmp_path, monkeypatch):
    from provscan.default_plugins.loaders import load_torch_weights
    from provscan.errors import ProvscanError

    torch.save({"w": torch.zeros(2)}, tmp_path / "a.pt")
    assert set(load_torch_weights(tmp_path / "a.pt")) == {"w"}
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(ProvscanError, match="TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"):
        load_torch_weights(tmp_path / "a.pt")
