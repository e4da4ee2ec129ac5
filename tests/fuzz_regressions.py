"""Inputs found by ``benchmarks/fuzz_safety.py``, rebuilt in code (no binary files), each with the
verdict it must get now. ``REGRESSIONS`` builders write under ``out`` and return the path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def _write(out: Path, name: str, data: bytes) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(data)
    return out / name


def memo_index_oom(out: Path) -> Path:
    """pickle target, 2026-11-29: LONG_BINPUT with index 0x4e493870 in a 52-byte text pickle.
    CPython's C unpickler grows its memo array to that index (pickle.load ran out of memory at
    2.5 GB); the scanner called the file text. Now: unsafe (memo index beyond the budget)."""
    data = (b"()p0\nVa\np1\n(lp2\nI1\naVF5@\na2tp7\nr" + b"p8IN" + b"(1a0\n\ntp9\na5\nss.")
    return _write(out, "notes.txt", data)


#: name -> builder; every one must be judged unsafe or inconclusive
REGRESSIONS: dict[str, Callable[[Path], Path]] = {f.__name__: f for f in (memo_index_oom,)}
