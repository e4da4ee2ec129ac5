"""Builders of malicious (and structurally broken) checkpoints for the file-safety tests.

Every payload, if it ever ran, would create the canary file given to the builder. Builders write
under ``out`` and return the path to scan. Nothing here is loaded by the tests except in a
subprocess control test that proves a payload is live.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch


def _u(s: str) -> bytes:
    """SHORT_BINUNICODE of s."""
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def _shell(canary: Path) -> str:
    return f"touch {canary}"


def _py(canary: Path) -> str:
    return f"open({str(canary)!r}, 'w').write('pwned')"


class _System:
    def __init__(self, canary: Path) -> None:
        self.cmd = _shell(canary)

    def __reduce__(self):
        return (os.system, (self.cmd,))


class _Exec:
    def __init__(self, canary: Path, fn) -> None:
        self.code, self.fn = _py(canary), fn

    def __reduce__(self):
        return (self.fn, (self.code,))


def _write(out: Path, name: str, data: bytes) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(data)
    return out / name


# --- raw pickles ---------------------------------------------------------------------------------
def reduce_os_system_p2(out: Path, canary: Path) -> Path:
    return _write(out, "model.pkl", pickle.dumps(_System(canary), protocol=2))


def reduce_os_system_p0(out: Path, canary: Path) -> Path:
    return _write(out, "model.bin", pickle.dumps(_System(canary), protocol=0))


def reduce_os_system_p1(out: Path, canary: Path) -> Path:
    return _write(out, "model.pth", pickle.dumps(_System(canary), protocol=1))


def builtins_exec_p4(out: Path, canary: Path) -> Path:
    return _write(out, "model.pt", pickle.dumps(_Exec(canary, exec), protocol=4))


def builtins_eval_p5(out: Path, canary: Path) -> Path:
    return _write(out, "model.ckpt", pickle.dumps(_Eval(f"__import__('os').system({_shell(canary)!r})"), protocol=5))


class _Eval:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


def getattr_chain(out: Path, canary: Path) -> Path:
    """getattr(__import__('os'), 'system')('touch canary') in protocol 2 opcodes."""
    data = (b"\x80\x02"
            b"cbuiltins\ngetattr\n"
            b"cbuiltins\n__import__\n" + _u("os") + b"\x85R" + _u("system") + b"\x86R"
            + _u(_shell(canary)) + b"\x85R.")
    return _write(out, "model.bin", data)


def pkgutil_resolve_name(out: Path, canary: Path) -> Path:
    data = (b"\x80\x04" + _u("pkgutil") + _u("resolve_name") + b"\x93" + _u("os:system") + b"\x85R"
            + _u(_shell(canary)) + b"\x85R.")
    return _write(out, "model.pt", data)


def importlib_import_module(out: Path, canary: Path) -> Path:
    """import_module('os') is memoised, then getattr(memo, 'system')(cmd)."""
    data = (b"\x80\x04" + _u("importlib") + _u("import_module") + b"\x93" + _u("os") + b"\x85R\x94" + b"0"
            + _u("builtins") + _u("getattr") + b"\x93" + b"h\x00" + _u("system") + b"\x86R"
            + _u(_shell(canary)) + b"\x85R.")
    return _write(out, "model.pt", data)


def operator_attrgetter(out: Path, canary: Path) -> Path:
    """attrgetter('system')(__import__('os')) without naming builtins.getattr."""
    data = (b"\x80\x04" + _u("operator") + _u("attrgetter") + b"\x93" + _u("system") + b"\x85R"
            + _u("builtins") + _u("__import__") + b"\x93" + _u("os") + b"\x85R\x85R"
            + _u(_shell(canary)) + b"\x85R.")
    return _write(out, "model.pt", data)


def stack_global_memo_trick(out: Path, canary: Path) -> Path:
    """'os' and 'system' are memoised early, far from the STACK_GLOBAL that reads them back."""
    data = (b"\x80\x04" + _u("os") + b"\x94" + _u("system") + b"\x94" + b"0" + b"0"  # MEMOIZE, POP
            + b"h\x00h\x01\x93" + _u(_shell(canary)) + b"\x85R.")
    return _write(out, "model.bin", data)


def stack_global_computed_name(out: Path, canary: Path) -> Path:
    """The module name is the result of a call (here an allowlisted one), not a constant."""
    data = (b"\x80\x04" + _u("collections") + _u("OrderedDict") + b"\x93)R" + _u("system") + b"\x93"
            + _u(_shell(canary)) + b"\x85R.")
    return _write(out, "model.bin", data)


def inst_opcode_p0(out: Path, canary: Path) -> Path:
    data = b"(S'" + _shell(canary).encode() + b"'\nios\nsystem\n."
    return _write(out, "model.bin", data)


def ext_opcode(out: Path, canary: Path) -> Path:
    """EXT1 fetches a global from copyreg's extension registry (registered by the loader's process)."""
    data = b"\x80\x02\x82\x01" + _u(_shell(canary)) + b"\x85R."
    return _write(out, "model.bin", data)


def nested_pickle(out: Path, canary: Path) -> Path:
    inner = pickle.dumps(_System(canary), protocol=2)
    data = (b"\x80\x04" + _u("pickle") + _u("loads") + b"\x93" + b"C" + bytes([len(inner)]) + inner
            + b"\x85R.")
    return _write(out, "model.pkl", data)


def build_state_gadget(out: Path, canary: Path) -> Path:
    """BUILD (``__setstate__`` / ``__dict__`` update) on an allowlisted object other than a dict:
    the path by which state-setting gadgets run code."""
    data = b"\x80\x02ctorch\nSize\n)R}" + _u("__class__") + _u(_shell(canary)) + b"sb."
    return _write(out, "model.bin", data)


# --- torch files -------------------------------------------------------------------------------
def torch_zip_payload(out: Path, canary: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.zeros(3), "evil": _System(canary)}, out / "model.pt")
    return out / "model.pt"


def legacy_torch_payload(out: Path, canary: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.zeros(3), "evil": _System(canary)}, out / "model.pt",
               _use_new_zipfile_serialization=False)
    return out / "model.pt"


def _torch_zip_with(out: Path, canary: Path, replace: dict[str, bytes], base: bytes | None = None,
                    add: dict[str, bytes] | None = None) -> Path:
    """Rewrite a benign torch zip, replacing / adding members (stored, like torch writes them)."""
    if base is None:
        buf = io.BytesIO()
        torch.save({"w": torch.zeros(3)}, buf)
        base = buf.getvalue()
    src = zipfile.ZipFile(io.BytesIO(base))
    prefix = src.namelist()[0].split("/")[0]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for info in src.infolist():
            name = info.filename.replace(prefix, "archive", 1)
            z.writestr(name, replace.get(name, src.read(info)))
        for name, data in (add or {}).items():
            z.writestr(name, data)
    return path


def torch_zip_second_pickle(out: Path, canary: Path) -> Path:
    return _torch_zip_with(out, canary, {}, add={"archive/data/extra.pkl": pickle.dumps(_System(canary))})


def torch_zip_duplicate_data_pkl(out: Path, canary: Path) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        return _torch_zip_with(out, canary, {}, add={"archive/data.pkl": pickle.dumps(_System(canary), protocol=2)})


def torch_zip_hidden_bytes(out: Path, canary: Path) -> Path:
    """A payload pickle spliced between the last member and the central directory."""
    path = _torch_zip_with(out, canary, {})
    data = path.read_bytes()
    z = zipfile.ZipFile(path)
    cd = z.start_dir
    payload = pickle.dumps(_System(canary), protocol=2)
    patched = bytearray(data[:cd] + payload + data[cd:])
    # shift the central directory offset in the end record so zip readers still open it
    eocd = patched.rfind(b"PK\x05\x06")
    off = struct.unpack_from("<I", patched, eocd + 16)[0]
    struct.pack_into("<I", patched, eocd + 16, off + len(payload))
    path.write_bytes(bytes(patched))
    return path


def torch_zip_appended_payload(out: Path, canary: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.zeros(3)}, out / "model.pt")
    with open(out / "model.pt", "ab") as f:
        f.write(pickle.dumps(_System(canary), protocol=2))
    return out / "model.pt"


def torch_zip_padding_payload(out: Path, canary: Path) -> Path:
    """A payload written into torch's alignment padding (the 'FB' extra field of a local header)."""
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.ones(16)}, out / "model.pt")
    data = bytearray((out / "model.pt").read_bytes())
    nlen, xlen = struct.unpack_from("<HH", data, 26)
    payload = _shell(canary).encode()[: xlen - 4]
    data[30 + nlen + 4 : 30 + nlen + 4 + len(payload)] = payload
    (out / "model.pt").write_bytes(bytes(data))
    return out / "model.pt"


def torch_zip_crc_error(out: Path, canary: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.ones(16)}, out / "model.pt")
    data = bytearray((out / "model.pt").read_bytes())
    z = zipfile.ZipFile(out / "model.pt")
    info = next(i for i in z.infolist() if i.filename.endswith("data/0"))
    nlen, xlen = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + nlen + xlen
    data[start + 5] ^= 0xFF
    (out / "model.pt").write_bytes(bytes(data))
    return out / "model.pt"


def hf_dir_malicious_bin(out: Path, canary: Path) -> Path:
    from provscan.testing.tiny import save_tiny_hf

    save_tiny_hf("gpt2", out, safe_serialization=False)
    state = torch.load(out / "pytorch_model.bin", weights_only=True)
    state["evil"] = _System(canary)
    torch.save(state, out / "pytorch_model.bin")
    return out


def safetensors_overlap(out: Path, canary: Path) -> Path:
    import json

    header = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                         "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode()
    return _write(out, "model.safetensors", struct.pack("<Q", len(header)) + header + bytes(12))


def safetensors_trailing(out: Path, canary: Path) -> Path:
    import json

    header = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    return _write(out, "model.safetensors", struct.pack("<Q", len(header)) + header + bytes(8)
                  + pickle.dumps(_System(canary)))


MALICIOUS: dict[str, Callable[[Path, Path], Path]] = {
    f.__name__: f for f in (
        reduce_os_system_p0, reduce_os_system_p1, reduce_os_system_p2, builtins_exec_p4, builtins_eval_p5,
        getattr_chain, pkgutil_resolve_name, importlib_import_module, operator_attrgetter,
        stack_global_memo_trick, stack_global_computed_name, inst_opcode_p0, ext_opcode, nested_pickle,
        build_state_gadget, torch_zip_payload, legacy_torch_payload, torch_zip_second_pickle,
        torch_zip_duplicate_data_pkl, torch_zip_hidden_bytes, torch_zip_appended_payload,
        torch_zip_crc_error, torch_zip_padding_payload, hf_dir_malicious_bin, safetensors_overlap, safetensors_trailing,
    )
}


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
