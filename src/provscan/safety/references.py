"""What a loader reaches beyond the files themselves: links and file names inside metadata.

- **Symbolic links and special files** inside a checkpoint directory are unsafe: a loader follows
  a link to bytes that were not scanned (or to a FIFO that never ends).
- **File references in JSON metadata**: the ``weight_map`` of shard indexes
  (``*.index.json``), and every value under a key ending in ``_file`` or ``_files``
  (``fast_tokenizer_files``, ``tokenizer_file``, ``vocab_file``...) in config-like JSON files.
  A reference that is absolute, a URL, or escapes the directory (``../../outside/evil.bin``)
  is unsafe: transformers passes such keys of ``tokenizer_config.json`` to the tokenizer, which
  opens them (``special_tokens_map_file``, which old versions wrote as the saving machine's
  absolute path and nothing opens, is exempt). A shard that the index names but the directory lacks is
  inconclusive (the loader would fail, or fetch it).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from provscan.errors import ProvscanError
from provscan.safety.report import FileSafety, SafetyReport, SafetyVerdict

#: JSON files larger than this are not searched for references (tokenizer vocabularies)
MAX_REFERENCE_JSON = 16 * 1024 * 1024
#: files never searched (large vocabularies; no file names in them)
NOT_REFERENCE_FILES = {"tokenizer.json", "vocab.json"}
_FILE_KEY = re.compile(r"(^|_)files?$")
#: written by old save_pretrained as the saving machine's absolute path; no loader opens it
IGNORED_KEYS = {"special_tokens_map_file"}
_WINDOWS_ABS = re.compile(r"^[A-Za-z]:[\\/]")


def list_entries(path: Path, ignore: tuple[str, ...] | list[str] = ()) -> tuple[dict[str, Path], list[FileSafety]]:
    """Regular files (relative POSIX path -> path) and verdicts for links and special files.

    ``path`` itself must exist and not be a link (a usage error otherwise). Entries matching an
    ``ignore`` glob (:func:`provscan.digest.is_ignored`) are left out, not looked at.
    """
    from provscan.digest import walk_kept

    if not os.path.lexists(path):
        raise ProvscanError(f"no such file or directory: {path}")
    if path.is_symlink():
        raise ProvscanError(f"{path} is a symbolic link; pass the real path")
    if path.is_file():
        return {path.name: path}, []
    if not path.is_dir():
        return {}, [FileSafety(path.name, "special", SafetyVerdict.UNSAFE, ["not a regular file or directory"])]
    files: dict[str, Path] = {}
    refused: list[FileSafety] = []

    def on_error(exc: OSError) -> None:
        rel = Path(exc.filename).relative_to(path).as_posix() if exc.filename else "."
        refused.append(FileSafety(rel, "unreadable", SafetyVerdict.INCONCLUSIVE,
                                  [f"cannot list ({exc.strerror or exc})"]))

    for root, dirs, names in walk_kept(path, ignore, on_error):
        for n in names + dirs:
            full = Path(root) / n
            rel = full.relative_to(path).as_posix()
            try:
                mode = full.lstat().st_mode
            except OSError as exc:
                refused.append(FileSafety(rel, "unreadable", SafetyVerdict.INCONCLUSIVE, [f"cannot read ({exc.strerror})"]))
                continue
            if stat.S_ISLNK(mode):
                refused.append(_link(rel, full, path))
            elif stat.S_ISREG(mode):
                files[rel] = full
            elif not stat.S_ISDIR(mode):
                refused.append(FileSafety(rel, "special", SafetyVerdict.UNSAFE,
                                          ["not a regular file (FIFO, socket or device): refused, not read"]))
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
    return files, refused


def _link(rel: str, full: Path, root: Path) -> FileSafety:
    try:
        target = os.readlink(full)
    except OSError:
        target = "?"
    resolved = os.path.realpath(full)
    inside = resolved == os.path.realpath(root) or resolved.startswith(os.path.realpath(root) + os.sep)
    where = "inside" if inside else "outside"
    return FileSafety(rel, "symlink", SafetyVerdict.UNSAFE, [
        f"symbolic link to {target[:200]!r} ({where} the directory): links are refused, a loader "
        f"would read bytes through it that the digest does not bind"])


def scan_tree(files: Mapping[str, Path], refused: list[FileSafety]) -> SafetyReport:
    """Scan regular files, then the references their metadata makes."""
    from provscan.safety.scan import scan_file

    results = {rel: scan_file(rel, full) for rel, full in sorted(files.items())}
    check_references(results, files, {r.path for r in refused})
    return SafetyReport(sorted([*results.values(), *refused], key=lambda r: r.path))


def check_references(results: dict[str, FileSafety], sources: Mapping[str, Path | IO[bytes]],
                     refused: set[str] | frozenset[str] = frozenset()) -> None:
    """Add reference findings to the verdicts of the JSON files that make them (in place)."""
    present = set(results) | set(refused)
    for rel, result in results.items():
        name = rel.rsplit("/", 1)[-1]
        if result.format != "json" or result.verdict != SafetyVerdict.SAFE or name in NOT_REFERENCE_FILES:
            continue
        doc = _read_json(sources[rel])
        if doc is None:
            continue
        base = posixpath.dirname(rel)
        unsafe, missing, refs = [], [], 0
        for key, ref in _references(doc):
            refs += 1
            problem = outside(ref, base)
            if problem:
                unsafe.append(f"{key} names {ref[:200]!r}, {problem}: a loader would read a file that was not scanned")
                continue
            target = posixpath.normpath(posixpath.join(base, ref))
            if key == "weight_map" and target not in present:
                missing.append(ref)
        if missing:
            result.findings.append(f"weight_map names {len(missing)} file(s) not in the directory "
                                   f"({', '.join(sorted(set(missing))[:3])}): the loader would fail or fetch them")
        result.findings += unsafe[:10]
        if refs:
            result.info["references"] = refs
        if unsafe:
            result.verdict = SafetyVerdict.UNSAFE
        elif missing:
            result.verdict = SafetyVerdict.INCONCLUSIVE


def outside(ref: str, base: str) -> str | None:
    """Why a reference leaves the checkpoint directory, or None when it stays inside."""
    if "://" in ref:
        return "a URL"
    if ref.startswith(("/", "\\", "~")) or _WINDOWS_ABS.match(ref):
        return "an absolute path"
    if "\\" in ref:
        return "a path with backslashes"
    target = posixpath.normpath(posixpath.join(base, ref))
    if target == ".." or target.startswith("../"):
        return "a path outside the directory"
    return None


def _read_json(src: Path | IO[bytes]) -> Any:
    try:
        if isinstance(src, Path):
            if src.stat().st_size > MAX_REFERENCE_JSON:
                return None
            raw = src.read_bytes()
        else:
            src.seek(0, os.SEEK_END)
            if src.tell() > MAX_REFERENCE_JSON:
                return None
            src.seek(0)
            raw = src.read()
        return json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None  # already judged by the JSON check


def _references(doc: Any) -> Iterator[tuple[str, str]]:
    """(key, file name) for every weight_map value and ``*_file``/``*_files`` string (iterative)."""
    todo: list[tuple[str, Any]] = [("", doc)]
    while todo:
        key, value = todo.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                if k in IGNORED_KEYS:
                    continue
                if k == "weight_map" and isinstance(v, dict):
                    yield from (("weight_map", s) for s in v.values() if isinstance(s, str))
                elif _FILE_KEY.search(str(k)) and isinstance(v, str):
                    yield str(k), v
                elif _FILE_KEY.search(str(k)) and isinstance(v, list):
                    yield from ((str(k), s) for s in v if isinstance(s, str))
                else:
                    todo.append((str(k), v))
        elif isinstance(value, list):
            todo.extend((key, v) for v in value)
