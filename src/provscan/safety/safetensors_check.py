"""Full structural validation of a safetensors file (header only is parsed; data is not read).

Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data buffer. The
header maps tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets
relative to the buffer) plus an optional ``__metadata__`` map of strings. Checked as the
reference (Rust) parser does, and stricter: N at most 100,000,000 and inside the file, a JSON
object starting with ``{`` without duplicate keys, known dtypes, shapes and offsets that fit an
unsigned 64-bit integer, the element count folded with overflow checks (``[2**40, 2**40, 0]``
overflows there although its product is 0), ``prod(shape) * dtype bits / 8 == end - begin``,
offsets inside the buffer, no overlaps, no gaps and no trailing bytes (the tensors tile the
buffer exactly). Work budgets (:mod:`provscan.safety.budgets`): the number of JSON values
(counted before parsing, so a header of empty lists costs nothing) and the rank.
"""

from __future__ import annotations

import json
import struct
from typing import IO, Any

from provscan.safety.budgets import Budgets, budgets
from provscan.safety.report import FileSafety, SafetyVerdict

#: the reference parser's limit (``MAX_HEADER_SIZE`` in the safetensors crate)
MAX_HEADER = 100_000_000
USIZE = 1 << 64
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


class OverBudget(Exception):
    """The header is larger than the scan's budgets allow (inconclusive, not unsafe)."""


def json_values_bound(text: bytes) -> int:
    """An upper bound on the number of values in a JSON document, at C speed (commas and openers,
    also those inside strings)."""
    return text.count(b",") + text.count(b"[") + text.count(b"{") + 1


def read_header(f: IO[bytes], size: int, limits: Budgets | None = None) -> tuple[dict[str, Any], int]:
    """(header, header length) of the safetensors stream ``f`` of ``size`` bytes.

    Raises ValueError naming a structural problem, :class:`OverBudget` when a budget runs out.
    """
    limits = limits or budgets()
    f.seek(0)
    raw = f.read(8)
    if len(raw) < 8:
        raise ValueError("shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw)
    if n > MAX_HEADER or n > size - 8:
        raise ValueError(f"header length {n} out of bounds (file {size} bytes, limit {MAX_HEADER})")
    text = f.read(n)
    if not text.startswith(b"{"):
        raise ValueError("header does not start with '{'")
    if json_values_bound(text) > limits.max_json_values:
        raise OverBudget(f"header with more than {limits.max_json_values} JSON values "
                         f"(PROVSCAN_SAFETY_MAX_JSON_VALUES)")
    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=_no_dupes)
    except _Dup as exc:
        raise ValueError(str(exc)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"header is not UTF-8 JSON ({exc})") from None
    except RecursionError:
        raise ValueError("header nested deeper than a safetensors header can be") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header, n


def scan_safetensors(rel: str, f: IO[bytes], size: int, limits: Budgets | None = None) -> FileSafety:
    limits = limits or budgets()
    try:
        header, n = read_header(f, size, limits)
        info = validate(header, size - 8 - n, limits.max_rank)
    except OverBudget as exc:
        return FileSafety(rel, "safetensors", SafetyVerdict.INCONCLUSIVE, [f"over budget: {exc}"])
    except ValueError as exc:
        return FileSafety(rel, "safetensors", SafetyVerdict.UNSAFE, [str(exc)])
    return FileSafety(rel, "safetensors", SafetyVerdict.SAFE, [], info)


def validate(header: dict[str, Any], buffer_len: int, max_rank: int = 64) -> dict[str, Any]:
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
            raise ValueError(f"tensor {name[:80]!r}: entry must have exactly dtype, shape, data_offsets")
        dtype, shape, offs = t["dtype"], t["shape"], t["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
            raise ValueError(f"tensor {name[:80]!r}: unknown dtype {str(dtype)[:40]!r}")
        if not isinstance(shape, list):
            raise ValueError(f"tensor {name[:80]!r}: shape must be a list of non-negative integers")
        if len(shape) > max_rank:
            raise OverBudget(f"tensor {name[:80]!r} has {len(shape)} dimensions (PROVSCAN_SAFETY_MAX_RANK {max_rank})")
        if not all(type(s) is int and 0 <= s < USIZE for s in shape):
            raise ValueError(f"tensor {name[:80]!r}: shape must be a list of non-negative integers below 2**64")
        if not (isinstance(offs, list) and len(offs) == 2 and all(type(o) is int and 0 <= o < USIZE for o in offs)):
            raise ValueError(f"tensor {name[:80]!r}: data_offsets must be two integers below 2**64")
        begin, end = offs
        if not 0 <= begin <= end <= buffer_len:
            raise ValueError(f"tensor {name[:80]!r}: offsets [{begin}, {end}] outside the {buffer_len}-byte buffer")
        numel = 1
        for s in shape:  # folded like the reference parser: every partial product must fit 64 bits
            numel *= s
            if numel >= USIZE:
                raise ValueError(f"tensor {name[:80]!r}: the element count of shape {shape} overflows 64 bits")
        bits = numel * DTYPE_BITS[dtype]
        if bits >= USIZE:
            raise ValueError(f"tensor {name[:80]!r}: the bit count of shape {shape} overflows 64 bits")
        if bits % 8 or bits // 8 != end - begin:
            raise ValueError(f"tensor {name[:80]!r}: {dtype} x {shape} needs {bits / 8:g} bytes, "
                             f"offsets span {end - begin}")
        spans.append((begin, end, name))
        dname = TORCH_NAMES.get(str(dtype), str(dtype))
        dtypes[dname] = dtypes.get(dname, 0) + 1
        params += numel
    pos = 0
    for begin, end, name in sorted(spans):
        if begin < pos:
            raise ValueError(f"tensor {name[:80]!r} overlaps another tensor")
        if begin > pos:
            raise ValueError(f"{begin - pos} unreferenced bytes before tensor {name[:80]!r}")
        pos = end
    if pos != buffer_len:
        raise ValueError(f"{buffer_len - pos} trailing bytes after the last tensor")
    return {"tensors": len(spans), "parameters": params, "dtypes": dtypes, "bytes": buffer_len,
            "metadata": meta}
