"""Builders of malicious (and structurally broken) checkpoints for the file-safety tests.

Every payload, if it ever ran, would create the canary file given to the builder. Builders write
under ``out`` and return the path to scan. Nothing here is loaded by the tests except in a
subprocess control test that proves a payload is live (:data:`LIVE` names how to load each case
the unsafe way).

:data:`MALICIOUS` holds payloads (the verdict must be unsafe or inconclusive, never safe);
:data:`HOSTILE` holds inputs that attack the scanner itself (work, memory, malformed structure):
they must get a verdict quickly, without a crash. Everything is built in code: no binary blobs.
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


# --- content over names (issue 12) -------------------------------------------------------------
def _text_pickle(name: str) -> Callable[[Path, Path], Path]:
    def build(out: Path, canary: Path) -> Path:
        return _write(out, name, pickle.dumps(_System(canary), protocol=0))
    build.__name__ = "text_pickle_named_" + name.replace(".", "_").lower()
    return build


text_pickle_named_notes_txt = _text_pickle("notes.txt")
text_pickle_named_readme_md = _text_pickle("README.md")
text_pickle_named_tokenizer_model = _text_pickle("tokenizer.model")
text_pickle_named_license = _text_pickle("LICENSE")


def text_pickle_hex_int(out: Path, canary: Path) -> Path:
    """A protocol-0 pickle whose first opcode is ``INT 0x1f`` (the unpickler reads ``int(x, 0)``)."""
    data = b"I0x1f\n0cos\nsystem\n(S'" + _shell(canary).encode() + b"'\ntR."
    return _write(out, "notes.txt", data)


def text_pickle_after_long_line(out: Path, canary: Path) -> Path:
    """A text opcode (UNICODE) whose line runs 8 MiB before the payload: a decoder that gives up on
    long lines, and calls the rest text, misses it."""
    data = b"V" + b"a" * (8 << 20) + b"\n0cos\nsystem\n(S'" + _shell(canary).encode() + b"'\ntR."
    return _write(out, "notes.txt", data)


def protocol1_pickle_in_hf_dir(out: Path, canary: Path) -> Path:
    """A JSON-only HF-looking directory whose ``merges.txt`` is a protocol-1 pickle."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text('{"model_type": "gpt2"}')
    (out / "merges.txt").write_bytes(pickle.dumps(_System(canary), protocol=1))
    return out


def nested_pickle_4_levels(out: Path, canary: Path) -> Path:
    """pickle.loads(pickle.loads(pickle.loads(pickle.loads(payload)))): each level in pickled bytes."""
    data = pickle.dumps(_System(canary), protocol=2)
    for _ in range(4):
        data = (b"\x80\x04" + _u("pickle") + _u("loads") + b"\x93" + b"B" + struct.pack("<I", len(data)) + data
                + b"\x85R.")
    return _write(out, "model.pkl", data)


def nested_text_pickle_in_bytes(out: Path, canary: Path) -> Path:
    """A protocol-0 (text) pickle inside a bytes value, loaded by pickle.loads."""
    inner = pickle.dumps(_System(canary), protocol=0)
    data = b"\x80\x04" + _u("pickle") + _u("loads") + b"\x93" + b"B" + struct.pack("<I", len(inner)) + inner + b"\x85R."
    return _write(out, "model.pkl", data)


# --- what the loader reaches ---------------------------------------------------------------------
def _outside_payload(out: Path, canary: Path) -> Path:
    outside = out.parent / "outside"
    outside.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.zeros(3), "evil": _System(canary)}, outside / "evil.bin")
    return outside / "evil.bin"


def index_names_file_outside(out: Path, canary: Path) -> Path:
    """A JSON-only directory whose shard index points two levels up (transformers follows it)."""
    import json

    _outside_payload(out, canary)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    (out / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 12}, "weight_map": {"w": "../outside/evil.bin"}}))
    return out


def tokenizer_config_names_file_outside(out: Path, canary: Path) -> Path:
    import json

    _outside_payload(out, canary)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (out / "tokenizer_config.json").write_text(json.dumps({"vocab_file": str(out.parent / "outside" / "evil.bin")}))
    return out


def symlink_to_outside_payload(out: Path, canary: Path) -> Path:
    target = _outside_payload(out, canary)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text('{"model_type": "gpt2"}')
    os.symlink(os.path.relpath(target, out), out / "pytorch_model.bin")
    return out


def encrypted_zip_member(out: Path, canary: Path) -> Path:
    """A zip whose data.pkl is flagged encrypted: no reader can check it without the password."""
    path = _torch_zip_with(out, canary, {"archive/data.pkl": pickle.dumps(_System(canary), protocol=2)})
    data = bytearray(path.read_bytes())
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = data.find(sig)
        while pos >= 0:
            struct.pack_into("<H", data, pos + flag_at, struct.unpack_from("<H", data, pos + flag_at)[0] | 1)
            pos = data.find(sig, pos + 4)
    path.write_bytes(bytes(data))
    return path


def safetensors_shape_2_64(out: Path, canary: Path) -> Path:
    """shape [0, 2**64]: 0 elements by Python's product, rejected by the real parser (not a u64)."""
    import json

    header = json.dumps({"a": {"dtype": "F32", "shape": [0, 2**64], "data_offsets": [0, 0]}}).encode()
    return _write(out, "model.safetensors", struct.pack("<Q", len(header)) + header
                  + pickle.dumps(_System(canary)))


MALICIOUS: dict[str, Callable[[Path, Path], Path]] = {
    f.__name__: f for f in (
        reduce_os_system_p0, reduce_os_system_p1, reduce_os_system_p2, builtins_exec_p4, builtins_eval_p5,
        getattr_chain, pkgutil_resolve_name, importlib_import_module, operator_attrgetter,
        stack_global_memo_trick, stack_global_computed_name, inst_opcode_p0, ext_opcode, nested_pickle,
        build_state_gadget, torch_zip_payload, legacy_torch_payload, torch_zip_second_pickle,
        torch_zip_duplicate_data_pkl, torch_zip_hidden_bytes, torch_zip_appended_payload,
        torch_zip_crc_error, torch_zip_padding_payload, hf_dir_malicious_bin, safetensors_overlap, safetensors_trailing,
        text_pickle_named_notes_txt, text_pickle_named_readme_md, text_pickle_named_tokenizer_model,
        text_pickle_named_license, text_pickle_hex_int, text_pickle_after_long_line, protocol1_pickle_in_hf_dir, nested_pickle_4_levels,
        nested_text_pickle_in_bytes, index_names_file_outside, tokenizer_config_names_file_outside,
        symlink_to_outside_payload, encrypted_zip_member, safetensors_shape_2_64,
    )
}

_PICKLE_LOAD = "import pickle,sys; pickle.load(open(sys.argv[1],'rb'))"
_TORCH_LOAD = "import torch,sys; torch.load(sys.argv[1], weights_only=False)"
#: how each payload runs when loaded the unsafe way (argv[1] is the built path)
LIVE: dict[str, str] = {
    "reduce_os_system_p2": _PICKLE_LOAD,
    "torch_zip_payload": _TORCH_LOAD,
    "text_pickle_named_notes_txt": _TORCH_LOAD,
    "text_pickle_named_readme_md": _PICKLE_LOAD,
    "text_pickle_named_tokenizer_model": _TORCH_LOAD,
    "text_pickle_named_license": _PICKLE_LOAD,
    "text_pickle_hex_int": _PICKLE_LOAD,
    "text_pickle_after_long_line": _PICKLE_LOAD,
    "protocol1_pickle_in_hf_dir": "import pickle,sys; pickle.load(open(sys.argv[1] + '/merges.txt','rb'))",
    "nested_pickle_4_levels": _PICKLE_LOAD,
    "nested_text_pickle_in_bytes": _PICKLE_LOAD,
    # what a loader following the index does with the shard it names
    "index_names_file_outside": ("import json,os,sys,torch; d=sys.argv[1]; m=json.load(open(d+'/pytorch_model.bin.index.json'));"
                                 " [torch.load(os.path.join(d, f), weights_only=False) for f in set(m['weight_map'].values())]"),
    "symlink_to_outside_payload": "import torch,sys; torch.load(sys.argv[1] + '/pytorch_model.bin', weights_only=False)",
    "safetensors_trailing": None,  # data after the tensors; no loader runs it (hidden payload)
}


# --- hostile to the scanner: work, memory, malformed structure ------------------------------------
def shared_tuple_build(out: Path) -> Path:
    """A tuple shared 7 ways, nested 12 deep, then BUILD: 7**12 paths through a 200-byte pickle."""
    body = b"\x80\x04K\x01\x94"
    for i in range(12):
        body += b"(" + (b"h" + bytes([i])) * 7 + b"t\x94"
    return _write(out, "model.bin", body + b"}b.")


def opcode_flood(out: Path) -> Path:
    """Ten million NONE/POP pairs: over the opcode budget, judged in seconds."""
    return _write(out, "model.pt", b"\x80\x02" + b"N0" * 5_000_000 + b"N.")


def memo_flood(out: Path) -> Path:
    """A million memoised values (each MEMOIZE keeps one alive): over the opcode budget."""
    return _write(out, "model.pkl", b"\x80\x04" + b"N\x94" * 1_000_001 + b".")


def huge_declared_bytes(out: Path) -> Path:
    """BINBYTES8 announcing 2**62 bytes in a 20-byte file."""
    return _write(out, "model.pkl", b"\x80\x04\x8e" + struct.pack("<Q", 1 << 62) + b"abc.")


def deep_list_pickle(out: Path) -> Path:
    """A million nested EMPTY_LIST/APPEND levels."""
    return _write(out, "model.pkl", b"\x80\x02" + b"]" * 1_000_000 + b"a" * 999_999 + b".")


def safetensors_empty_lists(out: Path) -> Path:
    """A 40 MB header of empty lists (the stdlib parser would take gigabytes)."""
    header = b'{"a": [' + b"[]," * 13_000_000 + b"[]]}"
    return _write(out, "model.safetensors", struct.pack("<Q", len(header)) + header)


def safetensors_shape_overflow(out: Path) -> Path:
    import json

    header = json.dumps({"a": {"dtype": "F32", "shape": [2**40, 2**40, 0], "data_offsets": [0, 0]}}).encode()
    return _write(out, "model.safetensors", struct.pack("<Q", len(header)) + header)


def safetensors_huge_rank(out: Path) -> Path:
    import json

    header = json.dumps({"a": {"dtype": "F32", "shape": [1] * 100_000, "data_offsets": [0, 4]}}).encode()
    return _write(out, "model.safetensors", struct.pack("<Q", len(header)) + header + bytes(4))


def safetensors_header_too_large(out: Path) -> Path:
    return _write(out, "model.safetensors", struct.pack("<Q", 100_000_001) + b"{" + b" " * 64)


def json_brackets(out: Path) -> Path:
    """10 MB of '[' as config.json."""
    return _write(out, "config.json", b"[" * 10_000_000)


def json_deep_but_parsable(out: Path) -> Path:
    """JSON nested 500 levels (parses, over the depth budget)."""
    return _write(out, "config.json", b"[" * 500 + b"]" * 500)


def zip_many_members(out: Path) -> Path:
    """An archive announcing 200,000 members (over the member budget)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for i in range(200_001):
            z.writestr(f"archive/data/{i}", b"")
    return path


def zip_compressed_bomb(out: Path) -> Path:
    """A deflated data.pkl of 64 MiB of zeros (torch stores members; never inflated)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", bytes(64 << 20))
    return path


def truncated_zip(out: Path) -> Path:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(64)}, buf)
    return _write(out, "model.pt", buf.getvalue()[: len(buf.getvalue()) // 2])


def model_card_huge_hidden(out: Path, canary: Path | None = None) -> Path:
    """A provscan classifier card declaring hidden=30,000,000 over small weights (7.7 GB if built)."""
    from provscan.architectures import small_cnn
    from provscan.classifier_card import save_classifier

    save_classifier(small_cnn(), out, "small-cnn", {}, 10, (1, 8, 8))
    card = out / "provscan_model.json"
    import json

    data = json.loads(card.read_text())
    data["config"] = {"hidden": 30_000_000}
    card.write_text(json.dumps(data))
    return out


def fifo_in_directory(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text("{}")
    os.mkfifo(out / "pytorch_model.bin")
    return out


def binary_garbage(out: Path) -> Path:
    return _write(out, "weights.dat", bytes(range(256)) * 64)


HOSTILE: dict[str, Callable[[Path], Path]] = {
    f.__name__: f for f in (
        shared_tuple_build, opcode_flood, memo_flood, huge_declared_bytes, deep_list_pickle,
        safetensors_empty_lists, safetensors_shape_overflow, safetensors_huge_rank, safetensors_header_too_large,
        json_brackets, json_deep_but_parsable, zip_many_members, zip_compressed_bomb, truncated_zip,
        fifo_in_directory, binary_garbage,
    )
}


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
