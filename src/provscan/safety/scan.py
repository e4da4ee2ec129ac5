"""Dispatch each file of a checkpoint to the scanner for its format (decided by content).

- ``*.safetensors``: :mod:`provscan.safety.safetensors_check`.
- files starting with a zip signature: torch zip checkpoints (:func:`scan_torch_zip`).
- files that decode as a pickle (``.bin``, ``.pt``, ``.pth``, ``.ckpt``, ``.pkl``... or any file
  starting with a pickle PROTO opcode): torch legacy format or plain pickle.
- JSON files must parse; plain text, Markdown and tokenizer vocabularies are data.
- anything else: inconclusive ("format not understood"), never safe.
"""

from __future__ import annotations

import json
from pathlib import Path

from provscan.digest import list_files
from provscan.safety.report import FileSafety, SafetyReport, SafetyVerdict
from provscan.safety.safetensors_check import scan_safetensors
from provscan.safety.torchfile import scan_legacy_or_pickle, scan_torch_zip

JSON_SUFFIXES = {".json"}
# Data read as text by tokenizers / humans; nothing in provscan or transformers executes it.
TEXT_SUFFIXES = {".txt", ".md", ".jsonl", ".model", ".gitattributes", ".gitignore", ".spm"}
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".dat", ".data"}
ZIP_MAGIC = b"PK\x03\x04"


def scan_path(path: Path) -> SafetyReport:
    """Scan every file of ``path`` (a file or a directory); symlinks are refused by ``list_files``."""
    return SafetyReport([scan_file(rel, full) for rel, full in list_files(Path(path))])


def sniff(full: Path) -> str:
    """The format a file's bytes (and, for text, its suffix) say it is."""
    suffix = full.suffix.lower()
    with open(full, "rb") as f:
        head = f.read(4)
    if suffix == ".safetensors":
        return "safetensors"
    if head.startswith(ZIP_MAGIC) or (head.startswith(b"PK") and suffix in PICKLE_SUFFIXES):
        return "zip"
    if head[:1] == b"\x80" or suffix in PICKLE_SUFFIXES:
        return "pickle"
    if suffix in JSON_SUFFIXES:
        return "json"
    if suffix in TEXT_SUFFIXES or full.name in ("LICENSE", "README", "NOTICE"):
        return "text"
    return "unknown"


def scan_file(rel: str, full: Path) -> FileSafety:
    try:
        fmt = sniff(full)
        if fmt == "safetensors":
            return scan_safetensors(rel, full)
        if fmt == "zip":
            return scan_torch_zip(rel, full)
        if fmt == "pickle":
            return scan_legacy_or_pickle(rel, full)
        if fmt == "json":
            try:
                json.loads(full.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                return FileSafety(rel, "json", SafetyVerdict.INCONCLUSIVE, [f"not valid JSON ({exc})"])
            return FileSafety(rel, "json", SafetyVerdict.SAFE)
        if fmt == "text":
            return FileSafety(rel, full.suffix.lstrip(".") or "text", SafetyVerdict.SAFE)
    except OSError as exc:
        return FileSafety(rel, "unreadable", SafetyVerdict.INCONCLUSIVE, [f"cannot read ({exc.strerror})"])
    return FileSafety(rel, "unknown", SafetyVerdict.INCONCLUSIVE, ["format not understood"])
