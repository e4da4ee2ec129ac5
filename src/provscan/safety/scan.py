"""Dispatch each file of a checkpoint to the scanner for its format, decided by content.

For every file, whatever its name:

1. **Pickle first.** The bytes are decoded as a pickle from the first byte, as ``pickle.load`` and
   ``torch.load`` would read them (protocols 0-5; protocol 0 and 1 pickles are plain text). If
   the stream completes, or acts (imports, calls, sets state) before it breaks, the file *is* a
   pickle and the pickle scanner judges it (torch legacy format or plain pickle streams).
2. **Binary formats by signature** (:data:`SNIFFERS` → :data:`SCANNERS`): zip (torch zip
   checkpoints), safetensors (by the shape of its header), GGUF, HDF5, NumPy, ONNX. A format
   without a scanner yet is inconclusive. When a file is both a pickle and another format (a
   polyglot), both scanners run and the worse verdict wins.
3. **Otherwise it must be data** that parses as a benign format
   (:data:`provscan.safety.data_formats.DATA_FORMATS`): the one its name claims (``.json`` must
   be JSON, ``.model`` a SentencePiece protobuf, ``.txt``/``.md``/``LICENSE`` UTF-8 text), or any
   of them when the name claims none. Anything else is inconclusive ("format not understood").

Whole checkpoints (:func:`scan_path`, :func:`scan_streams`) also check what the loader would
reach beyond the files (:mod:`provscan.safety.references`): symbolic links, shard indexes and
config- or tokenizer-named files outside the directory.

Entry points for callers that already hold the bytes: :func:`scan_stream` (a seekable binary
stream, e.g. ``open(fd, "rb", closefd=False)``), :func:`scan_fd` and :func:`scan_bytes`.
No scanner raises: anything unexpected becomes an inconclusive verdict naming the error.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from provscan.safety.budgets import Budgets, budgets
from provscan.safety.data_formats import DATA_FORMATS, is_onnx
from provscan.safety.numpy_file import npz_names, scan_npy, scan_npz
from provscan.safety.pickle_scan import Counter, PickleAnalysis, analyse_pickle
from provscan.safety.report import FileSafety, SafetyReport, SafetyVerdict
from provscan.safety.safetensors_check import MAX_HEADER, scan_safetensors
from provscan.safety.torchfile import scan_legacy_or_pickle, scan_torch_zip

HEAD_BYTES = 16


@dataclass
class FileInput:
    """One file as the scanners see it: a seekable stream, its size and first bytes."""

    rel: str
    f: IO[bytes]
    size: int
    head: bytes
    counter: Counter

    @property
    def limits(self) -> Budgets:
        return self.counter.limits


Scanner = Callable[[FileInput], FileSafety]


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n <= min(MAX_HEADER, size - 8) and head[8:9] == b"{"


def _scan_zip(inp: FileInput) -> FileSafety:
    """A zip whose members are all ``.npy`` files is an ``.npz``; any other zip must be a torch checkpoint."""
    if npz_names(inp.f, inp.limits) is not None:
        return scan_npz(inp.rel, inp.f, inp.size, inp.counter)
    return scan_torch_zip(inp.rel, inp.f, inp.size, inp.counter)


def not_scanned(fmt: str) -> Scanner:
    """A recognised format without a scanner: inconclusive, never safe."""
    def scan(inp: FileInput) -> FileSafety:
        return FileSafety(inp.rel, fmt, SafetyVerdict.INCONCLUSIVE, [f"{fmt} file: provscan has no scanner for this format yet"])
    return scan


#: (format, test on the first bytes and the size), first match wins
SNIFFERS: list[tuple[str, Callable[[bytes, int], bool]]] = [
    ("zip", lambda head, size: head.startswith((b"PK\x03\x04", b"PK\x05\x06"))),
    ("gguf", lambda head, size: head.startswith(b"GGUF")),
    ("hdf5", lambda head, size: head.startswith(b"\x89HDF\r\n\x1a\n")),
    ("numpy", lambda head, size: head.startswith(b"\x93NUMPY")),
    ("safetensors", _looks_like_safetensors),
    ("onnx", lambda head, size: is_onnx(head)),
]

#: format -> scanner; formats without one are inconclusive
SCANNERS: dict[str, Scanner] = {
    "zip": lambda inp: _scan_zip(inp),
    "safetensors": lambda inp: scan_safetensors(inp.rel, inp.f, inp.size, inp.limits),
    "gguf": not_scanned("gguf"),
    "hdf5": not_scanned("hdf5"),
    "numpy": lambda inp: scan_npy(inp.rel, inp.f, inp.size, inp.counter),
    "onnx": not_scanned("onnx"),
}

#: what a file name claims (suffix, or whole name); the content must parse as that format
CLAIMS: dict[str, tuple[str, ...]] = {
    ".json": ("json",), ".txt": ("text",), ".md": ("text",), ".jsonl": ("text",), ".jinja": ("text",),
    ".yaml": ("text",), ".yml": ("text",), ".gitattributes": ("text",), ".gitignore": ("text",),
    # SentencePiece models are protobuf; tiktoken-style ".model" files (Llama 3) are text
    ".model": ("sentencepiece", "text"), ".spm": ("sentencepiece",),
    ".sig": ("sigstore-bundle",),  # model-signing's model.sig: signature data, never loaded
    "LICENSE": ("text",), "README": ("text",), "NOTICE": ("text",), "COPYING": ("text",),
    ".png": ("image",), ".jpg": ("image",), ".jpeg": ("image",), ".gif": ("image",), ".webp": ("image",),
    ".rst": ("text",), ".csv": ("text",), ".tsv": ("text",), ".tiktoken": ("text",),
}
#: names that claim a binary format; the content decides, but a mismatch is reported
BINARY_CLAIMS = {".safetensors": "safetensors", ".gguf": "gguf", ".onnx": "onnx", ".h5": "hdf5",
                 ".keras": "zip", ".npy": "numpy", ".npz": "zip"}


def sniff(head: bytes, size: int) -> str | None:
    """The binary format the first bytes announce, or None."""
    for fmt, test in SNIFFERS:
        if test(head, size):
            return fmt
    return None


def scan_path(path: Path, ignore: tuple[str, ...] | list[str] = ()) -> SafetyReport:
    """Scan every file of ``path`` (a file or a directory) and what its metadata makes a loader reach.

    Symbolic links and special files inside a directory are judged (unsafe), not followed.
    Entries matching an ``ignore`` glob are left out (:func:`provscan.digest.is_ignored`).
    """
    from provscan.safety.references import list_entries, scan_tree

    files, refused = list_entries(Path(path), ignore)
    return scan_tree(files, refused)


def scan_streams(streams: Mapping[str, IO[bytes]]) -> SafetyReport:
    """Scan already-open files (relative POSIX path -> seekable binary stream) as one checkpoint.

    The streams are read from their start and left open; the caller keeps them.
    """
    from provscan.safety.references import check_references

    results = {rel: scan_stream(rel, f) for rel, f in sorted(streams.items())}
    check_references(results, streams)
    return SafetyReport(list(results.values()))


def scan_file(rel: str, full: Path) -> FileSafety:
    """Scan one file by path (a regular file; links and special files are refused)."""
    try:
        st = os.lstat(full)
        if not stat.S_ISREG(st.st_mode):
            kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
            return FileSafety(rel, "special", SafetyVerdict.UNSAFE, [f"{kind}: refused, not followed"])
        fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        return FileSafety(rel, "unreadable", SafetyVerdict.INCONCLUSIVE, [f"cannot read ({exc.strerror or exc})"])
    try:
        return scan_fd(rel, fd)
    finally:
        os.close(fd)


def scan_fd(rel: str, fd: int) -> FileSafety:
    """Scan the regular file open on descriptor ``fd`` (read with ``pread``-like seeks; left open)."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return FileSafety(rel, "special", SafetyVerdict.UNSAFE, ["not a regular file: refused"])
        f = open(fd, "rb", closefd=False)  # noqa: SIM115 - the caller owns the descriptor
    except OSError as exc:
        return FileSafety(rel, "unreadable", SafetyVerdict.INCONCLUSIVE, [f"cannot read ({exc.strerror or exc})"])
    with f:
        return scan_stream(rel, f)


def scan_bytes(rel: str, data: bytes) -> FileSafety:
    """Scan one file's content held in memory."""
    return scan_stream(rel, io.BytesIO(data))


def scan_stream(rel: str, f: IO[bytes], limits: Budgets | None = None) -> FileSafety:
    """Scan one file from a seekable binary stream. Never raises: errors become inconclusive."""
    try:
        return _scan(rel, f, limits or budgets())
    except OSError as exc:
        return FileSafety(rel, "unreadable", SafetyVerdict.INCONCLUSIVE, [f"cannot read ({exc.strerror or exc})"])
    except (RecursionError, MemoryError) as exc:
        return FileSafety(rel, "unknown", SafetyVerdict.INCONCLUSIVE, [f"over budget: {type(exc).__name__} while scanning"])
    except Exception as exc:  # noqa: BLE001 - a hostile file must get a verdict, never a crash
        return FileSafety(rel, "unknown", SafetyVerdict.INCONCLUSIVE,
                          [f"the scanner could not judge this file ({type(exc).__name__}: {str(exc)[:200]})"])


def _scan(rel: str, f: IO[bytes], limits: Budgets) -> FileSafety:
    f.seek(0, io.SEEK_END)
    size = f.tell()
    f.seek(0)
    head = f.read(HEAD_BYTES)
    inp = FileInput(rel, f, size, head, Counter(limits))
    if size == 0:
        return _data(inp)
    f.seek(0)
    probe = analyse_pickle(f, counter=inp.counter)
    results = []
    if probe.is_pickle:
        results.append(_pickle(inp, probe))
    fmt = sniff(head, size)
    if fmt is not None:
        results.append(SCANNERS[fmt](inp))
    if not results:
        return _data(inp)
    worst = max(results, key=lambda r: _RANK[r.verdict])
    if len(results) > 1:
        worst.format = "+".join(r.format for r in results)
        worst.findings = [m for r in results for m in r.findings] or worst.findings
        worst.findings.insert(0, f"the file is both a pickle and a {fmt} file (a polyglot)")
        if worst.verdict == SafetyVerdict.SAFE:
            worst.verdict = SafetyVerdict.INCONCLUSIVE
    claimed = _binary_claim(rel)
    if claimed and claimed != fmt and worst.verdict == SafetyVerdict.SAFE:
        worst.findings.append(f"named like a {claimed} file but the content is {worst.format}")
    return worst


_RANK = {SafetyVerdict.SAFE: 0, SafetyVerdict.INCONCLUSIVE: 1, SafetyVerdict.UNSAFE: 2}


def _pickle(inp: FileInput, probe: PickleAnalysis) -> FileSafety:
    result = scan_legacy_or_pickle(inp.rel, inp.f, inp.size, inp.counter, first=probe)
    if result.verdict == SafetyVerdict.UNSAFE and probe.unsafe and not inp.head.startswith(b"\x80"):
        result.findings.insert(0, "the content decodes as a text-protocol pickle")
    return result


def _binary_claim(rel: str) -> str | None:
    name = rel.rsplit("/", 1)[-1]
    suffix = os.path.splitext(name)[1].lower()
    return BINARY_CLAIMS.get(suffix)


def _claim(rel: str) -> tuple[str, ...]:
    name = rel.rsplit("/", 1)[-1]
    suffix = os.path.splitext(name)[1].lower()
    return (CLAIMS.get(suffix) or CLAIMS.get(name.lower()) or CLAIMS.get(name.split(".", 1)[0].upper())
            or ())


def _data(inp: FileInput) -> FileSafety:
    """No pickle, no binary signature: safe only as a benign data format that parses."""
    claimed = _claim(inp.rel)
    if inp.size == 0:
        if not claimed or "text" in claimed:
            return FileSafety(inp.rel, "empty", SafetyVerdict.SAFE)
        return FileSafety(inp.rel, claimed[0], SafetyVerdict.INCONCLUSIVE, [f"empty file, not a valid {claimed[0]} file"])
    binary = _binary_claim(inp.rel)
    if binary:
        if binary in SCANNERS:  # its scanner says precisely what is wrong
            return SCANNERS[binary](inp)
        return FileSafety(inp.rel, binary, SafetyVerdict.INCONCLUSIVE,
                          [f"named like a {binary} file, but the content is not one (nor a pickle)"])
    reasons = []
    for fmt in claimed or tuple(DATA_FORMATS):
        check = DATA_FORMATS[fmt](inp.f, inp.size, inp.limits)
        if check.ok:
            return FileSafety(inp.rel, fmt, SafetyVerdict.SAFE, [], {"data": "parsed, not loaded by provscan"})
        reasons.append(check.reason)
    if claimed:
        return FileSafety(inp.rel, claimed[0], SafetyVerdict.INCONCLUSIVE,
                          [f"not a valid {' or '.join(claimed)} file: {'; '.join(reasons)}"])
    return FileSafety(inp.rel, "unknown", SafetyVerdict.INCONCLUSIVE, ["format not understood (not a pickle, no known "
                                                                 "signature, not JSON, SentencePiece, an image or UTF-8 text)"])
