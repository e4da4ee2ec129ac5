"""Dispatch each file of a checkpoint to the scanner for its format.

(Interim version: safetensors and plain-text files are checked; pickle-based files are reported
inconclusive until the pickle analyser lands.)
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from provscan.digest import list_files
from provscan.safety.report import FileSafety, SafetyReport, Verdict

TEXT_SUFFIXES = {".json", ".txt", ".md", ".model", ".jsonl"}


def scan_path(path: Path) -> SafetyReport:
    return SafetyReport([scan_file(rel, full) for rel, full in list_files(Path(path))])


def scan_file(rel: str, full: Path) -> FileSafety:
    suffix = full.suffix.lower()
    if suffix == ".safetensors":
        return _scan_safetensors(rel, full)
    if suffix in TEXT_SUFFIXES:
        return FileSafety(rel, suffix.lstrip("."), Verdict.SAFE)
    return FileSafety(rel, "unknown", Verdict.INCONCLUSIVE, ["format not understood"])


def _scan_safetensors(rel: str, full: Path) -> FileSafety:
    size = full.stat().st_size
    with open(full, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            return FileSafety(rel, "safetensors", Verdict.UNSAFE, ["truncated header length"])
        (n,) = struct.unpack("<Q", raw)
        if n > min(size - 8, 100 * 1024 * 1024):
            return FileSafety(rel, "safetensors", Verdict.UNSAFE, ["header length out of bounds"])
        try:
            json.loads(f.read(n))
        except ValueError:
            return FileSafety(rel, "safetensors", Verdict.UNSAFE, ["header is not JSON"])
    return FileSafety(rel, "safetensors", Verdict.SAFE)
