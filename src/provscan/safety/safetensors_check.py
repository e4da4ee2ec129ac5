"""Full structural validation of a safetensors file (header only is parsed; data is not read).

Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data buffer. The
header maps tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets
relative to the buffer) plus an optional ``__metadata__`` map of strings. Checked: N bounded and
inside the file, JSON object without duplicate keys, known dtypes, non-negative integer shapes,
``prod(shape) * dtype size == end - begin``, offsets inside the buffer, no overlaps, no gaps and
no trailing bytes (the tensors tile the buffer exactly, as the reference implementation requires).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from provscan.safety.report import FileSafety, SafetyVerdict

MAX_HEADER = 100 * 1024 * 1024
DTYPE_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16,
              "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64,
              "U64": 64, "F64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}


TORCH_NAMES = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16", "F16": "float16",
               "BF16": "bfloat16", "I32": "int32", "U32": "uint32", "F32": "float32", "I64": "int64",
               "U64": "uint64", "F64": "float64", "C64": "complex64", "F8_E5M2": "float8_e5m2",
               "F8_E4M3": "float8_e4m3fn"}


class _Dup(ValueError):
    pass


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _Dup(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r} in the header")
    return dict(pairs)


def read_header(path: Path) -> tuple[dict[str, Any], int, int]:
    """(header, header length, file size); raises ValueError naming the problem."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise ValueError("shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_HEADER or n > size - 8:
            raise ValueError(f"header length {n} out of bounds (file {size} bytes)")
        text = f.read(n)
    if not text.startswith(b"{"):
        raise ValueError("header does not start with '{'")
    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=_no_dupes)
    except _Dup as exc:
        raise ValueError(str(exc)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"header is not UTF-8 JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header, n, size


def scan_safetensors(rel: str, path: Path) -> FileSafety:
    try:
        header, n, size = read_header(path)
        info = validate(header, size - 8 - n)
    except ValueError as exc:
        return FileSafety(rel, "safetensors", SafetyVerdict.UNSAFE, [str(exc)])
    return FileSafety(rel, "safetensors", SafetyVerdict.SAFE, [], info)


def validate(header: dict[str, Any], buffer_len: int) -> dict[str, Any]:
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise ValueError("__metadata__ must map strings to strings")
    spans = []
    dtypes: dict[str, int] = {}
    params = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(t, dict) or set(t) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"tensor {name!r}: entry must have exactly dtype, shape, data_offsets")
        dtype, shape, offs = t["dtype"], t["shape"], t["data_offsets"]
        if dtype not in DTYPE_BITS:
            raise ValueError(f"tensor {name!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise ValueError(f"tensor {name!r}: shape must be a list of non-negative integers")
        if not (isinstance(offs, list) and len(offs) == 2 and all(type(o) is int for o in offs)):
            raise ValueError(f"tensor {name!r}: data_offsets must be two integers")
        begin, end = offs
        if not 0 <= begin <= end <= buffer_len:
            raise ValueError(f"tensor {name!r}: offsets [{begin}, {end}] outside the {buffer_len}-byte buffer")
        numel = 1
        for s in shape:
            numel *= s
        bits = numel * DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != end - begin:
            raise ValueError(f"tensor {name!r}: {dtype} x {shape} needs {bits / 8:g} bytes, "
                             f"offsets span {end - begin}")
        spans.append((begin, end, name))
        dname = TORCH_NAMES.get(str(dtype), str(dtype))
        dtypes[dname] = dtypes.get(dname, 0) + 1
        params += numel
    pos = 0
    for begin, end, name in sorted(spans):
        if begin < pos:
            raise ValueError(f"tensor {name!r} overlaps another tensor")
        if begin > pos:
            raise ValueError(f"{begin - pos} unreferenced bytes before tensor {name!r}")
        pos = end
    if pos != buffer_len:
        raise ValueError(f"{buffer_len - pos} trailing bytes after the last tensor")
    return {"tensors": len(spans), "parameters": params, "dtypes": dtypes, "bytes": buffer_len,
            "metadata": meta}
