"""Digest manifest of a checkpoint: per-file SHA-256 and size, and one root digest.

Root digest (the certificate subject, see docs/certificate.md)::

    sha256(canonical_json({"version": 1,
                           "files": [{"path": P, "size": N, "sha256": H}, ...]}))

with the files sorted by ``path`` (a relative POSIX path; for a single file, its file name) and
canonical JSON = ``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=True)``.
It binds every relative path, size and content: renaming, adding, removing or changing any byte
of any file changes it. Directory names above the files, empty directories and timestamps are not
bound. Symbolic links and special files (FIFOs, sockets, devices) are refused, never skipped.

How it is computed:

- Streamed: each file is read with ``readinto`` into one reused ``CHUNK``-sized buffer (1 MiB:
  the bytes the kernel copies in are still in cache when SHA-256 reads them; no other copy is
  made), so memory stays at one buffer per worker whatever the file size.
- Parallel across files: a thread pool hashes several files at once (hashlib releases the GIL
  while it hashes), largest files first so one big file does not end up alone at the tail.
- Within one large file, SHA-256 is inherently sequential (each block depends on the state left
  by the previous one), so the per-file digest that ``sha256sum`` prints cannot be split across
  cores. A tree hash over chunks would parallelise but would no longer match ``sha256sum`` and
  would change the root digest definition, so we do not. Reads of a cold file overlap hashing
  through the kernel's read-ahead (``POSIX_FADV_SEQUENTIAL``); a reader thread of our own was
  measured slower on a warm cache (thread hand-offs, buffers larger than the cache) and removed.
- Consistency: reads stop at the size the file had when it was opened; a file that is shorter or
  longer than that by the end (it changed while being hashed) is an error, never a digest.
- A progress bar (bytes) is shown on inputs of ``PROGRESS_MIN_BYTES`` or more, unless quiet.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from provscan.errors import ProvscanError

CHUNK = 1024 * 1024  # small enough to stay in cache between readinto and the hash
PROGRESS_MIN_BYTES = 256 * 1024 * 1024
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class FileDigest:
    """One file of a manifest: relative POSIX path, size in bytes, SHA-256 hex digest."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """Every file of a checkpoint (sorted by path) and the root digest binding them."""

    name: str
    files: tuple[FileDigest, ...]
    root_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"version": MANIFEST_VERSION, "name": self.name, "root_sha256": self.root_sha256,
                "files": [asdict(f) for f in self.files]}


def root_digest(files: list[FileDigest] | tuple[FileDigest, ...]) -> str:
    """The root digest of a set of file digests (see the module docstring)."""
    body = {"version": MANIFEST_VERSION,
            "files": [asdict(f) for f in sorted(files, key=lambda f: f.path)]}
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return hashlib.sha256(data).hexdigest()


def _check_regular(rel: str, full: Path) -> None:
    try:
        mode = full.lstat().st_mode
    except OSError as exc:
        raise ProvscanError(f"{rel}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISLNK(mode):
        raise ProvscanError(f"{rel}: symbolic links inside a checkpoint are refused")
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise ProvscanError(f"{rel}: not a regular file (FIFO, socket or device); refused")


def is_ignored(rel: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """Whether ``rel`` (a POSIX path inside a checkpoint directory) matches an ``--ignore`` glob.

    A pattern without ``/`` matches a file or folder name at any depth (``model.sig``,
    ``*.png``, ``onnx``); a pattern with ``/`` matches the whole relative path (``onnx/*``,
    ``docs/*.md``; ``*`` also crosses ``/``). Case-sensitive.
    """
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, p) if "/" in p else fnmatch.fnmatchcase(name, p) for p in patterns)


def walk_kept(path: Path, ignore: tuple[str, ...] | list[str] = (),
              onerror: Callable[[OSError], None] | None = None
              ) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(path)`` with ``ignore`` applied before anything below is looked at: yields
    ``(root, dirs, names)`` with ignored folders pruned and ignored names dropped; ``dirs`` sorted
    (and walked in that order), ``names`` sorted."""
    for root, dirs, names in os.walk(path, onerror=onerror):
        if ignore:
            base = Path(root).relative_to(path).as_posix()
            dirs[:] = [d for d in dirs if not is_ignored(d if base == "." else f"{base}/{d}", ignore)]
            names = [n for n in names if not is_ignored(n if base == "." else f"{base}/{n}", ignore)]
        dirs.sort()
        yield root, dirs, sorted(names)


def ignored_files(path: Path, patterns: tuple[str, ...] | list[str]) -> list[str]:
    """Relative paths of every entry ``patterns`` leave out of ``path`` (files under an ignored
    folder included; links listed, never followed). Empty for a single file."""
    path = Path(path)
    if not patterns or not path.is_dir() or path.is_symlink():
        return []
    out = []
    for root, dirs, names in os.walk(path):
        for n in sorted(names) + sorted(dirs):
            rel = (Path(root) / n).relative_to(path).as_posix()
            if is_ignored(rel, patterns) or any(is_ignored(a, patterns) for a in _ancestors(rel)):
                out.append(rel)
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
    return sorted(out)


def _ancestors(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def list_files(path: Path, ignore: tuple[str, ...] | list[str] = ()) -> list[tuple[str, Path]]:
    """(relative POSIX path, absolute path) of every regular file, sorted by relative path.

    Symbolic links and special files anywhere in the tree are refused with a
    :class:`~provscan.errors.ProvscanError`; so is an empty directory. Entries matching an
    ``ignore`` glob (:func:`is_ignored`; a matching folder with everything in it) are left out
    before they are looked at.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise ProvscanError(f"no such file or directory: {path}")
    if path.is_symlink():
        raise ProvscanError(f"{path} is a symbolic link; pass the real path")
    _check_regular(str(path), path)
    if path.is_file():
        return [(path.name, path)]

    def _walk_error(exc: OSError) -> None:
        raise ProvscanError(f"cannot list {exc.filename}: {exc.strerror or exc}")

    out = []
    for root, dirs, names in walk_kept(path, ignore, _walk_error):
        for n in names + dirs:
            full = Path(root) / n
            rel = full.relative_to(path).as_posix()
            _check_regular(rel, full)
            if n in names:
                out.append((rel, full))
    if not out:
        raise ProvscanError(f"{path} contains no files")
    return sorted(out)


def digest_file(rel: str, full: Path, on_bytes: Callable[[int], None] | None = None,
                chunk: int = CHUNK) -> FileDigest:
    """SHA-256 and size of one file, streamed; ``on_bytes(n)`` reports progress."""
    h = hashlib.sha256()
    view = memoryview(bytearray(chunk))
    count = 0
    try:
        with open(full, "rb", buffering=0) as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ProvscanError(f"{rel}: not a regular file; refused")
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            while count < st.st_size:
                want = st.st_size - count
                n = f.readinto(view if want >= chunk else view[:want])
                if not n:
                    break
                h.update(view[:n])
                count += n
                if on_bytes is not None:
                    on_bytes(n)
            grew = bool(f.read(1))
            end_size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise ProvscanError(f"{rel}: cannot read ({exc.strerror or exc})") from None
    if grew or count != st.st_size or end_size != count:
        raise ProvscanError(f"{rel}: file changed while it was being hashed "
                            f"({st.st_size} bytes at start, {count} read, {end_size} at end)")
    return FileDigest(rel, count, h.hexdigest())


def hash_file(path: Path) -> str:
    """SHA-256 hex digest of one file (the same as ``sha256sum`` prints)."""
    return digest_file(Path(path).name, Path(path)).sha256


def default_workers() -> int:
    """Threads for hashing: the CPUs this process may run on, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


class _ByteProgress:
    """A thread-safe byte counter drawn as a tqdm bar on stderr (only when not quiet)."""

    def __init__(self, total: int, desc: str) -> None:
        import sys

        from tqdm.auto import tqdm

        self._lock = threading.Lock()
        self._bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                         leave=False, file=sys.stderr)

    def update(self, n: int) -> None:
        with self._lock:
            self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


def compute_manifest(path: Path, workers: int | None = None,
                     show_progress: bool | None = None, ignore: tuple[str, ...] | list[str] = ()) -> Manifest:
    """Hash every file under ``path`` (streamed, files in parallel, largest first), except those
    matching an ``ignore`` glob (:func:`is_ignored`).

    ``show_progress`` defaults to: on for inputs of ``PROGRESS_MIN_BYTES`` or more, unless quiet
    (``--quiet``, ``PROVSCAN_QUIET`` or stderr not a terminal).
    """
    from provscan.progress import is_quiet

    path = Path(path)
    entries = list_files(path, ignore)
    sizes = [full.stat().st_size for _, full in entries]
    total = sum(sizes)
    if show_progress is None:
        show_progress = total >= PROGRESS_MIN_BYTES and not is_quiet()
    bar = _ByteProgress(total, f"digest {path.name}") if show_progress else None
    on_bytes = bar.update if bar is not None else None
    order = sorted(range(len(entries)), key=lambda i: -sizes[i])
    n_workers = max(1, min(workers or default_workers(), len(entries)))
    try:
        if n_workers == 1:
            results = {i: digest_file(*entries[i], on_bytes=on_bytes) for i in order}
        else:
            with ThreadPoolExecutor(max_workers=n_workers,
                                    thread_name_prefix="provscan-digest") as pool:
                futures = {i: pool.submit(digest_file, *entries[i], on_bytes=on_bytes)
                           for i in order}
                try:
                    results = {i: fut.result() for i, fut in futures.items()}
                except BaseException:
                    for fut in futures.values():
                        fut.cancel()
                    raise
    finally:
        if bar is not None:
            bar.close()
    files = tuple(results[i] for i in range(len(entries)))
    return Manifest(name=path.resolve().name, files=files, root_sha256=root_digest(files))


# model-signing (OpenSSF; sigstore/model-transparency) names a directory by another root digest.
MODEL_SIGNING_GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
MODEL_SIGNING_SIGNATURE = "model.sig"


def model_signing_root(manifest: Manifest, single_file: bool,
                       ignore: tuple[str, ...] = (MODEL_SIGNING_SIGNATURE,)
                       ) -> tuple[str, list[FileDigest]]:
    """model-signing's root digest of the same files, from the manifest's per-file SHA-256.

    The rule of model-signing's default serialization (``files``, SHA-256): leave out the
    top-level git paths (``.git``, ``.gitattributes``, ``.github``, ``.gitignore``, with everything
    below them) and the top-level paths in ``ignore`` (by default ``model.sig``, the signature
    ``model_signing sign`` writes and leaves out); order the files by path *components* (``x/y``
    before ``x.y/z``, unlike a string sort); hash the concatenated raw 32-byte file digests with
    SHA-256. A single-file checkpoint is that one file. Returns the root (hex) and the files in
    model-signing's order.
    """
    files = list(manifest.files)
    if not single_file:
        skip = set(MODEL_SIGNING_GIT_PATHS) | set(ignore)
        files = sorted((f for f in files if f.path.split("/", 1)[0] not in skip and f.path not in ignore),
                       key=lambda f: f.path.split("/"))
    h = hashlib.sha256()
    for f in files:
        h.update(bytes.fromhex(f.sha256))
    return h.hexdigest(), files


def file_ref(path: str | Path) -> dict[str, str]:
    """How a published report or certificate names a local input: its logical name (the last
    path component) and its SHA-256, never the path on the signer's disk.

    A file's digest is the SHA-256 of its bytes; a directory's is the root digest of its manifest
    (see :func:`compute_manifest`), so ``provscan digest`` reproduces both.
    """
    p = Path(path)
    name = p.resolve().name or p.name or str(path)
    if p.is_dir():
        return {"name": name, "sha256": compute_manifest(p).root_sha256}
    return {"name": name, "sha256": hash_file(p)}


def logical_location(location: str) -> str:
    """A target location as reports and certificates show it: a URL as given (without any
    user:password), a local path by its last component only."""
    if "://" in location:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(location)
        if parts.username or parts.password:
            host = parts.hostname or ""
            netloc = host + (f":{parts.port}" if parts.port else "")
            return urlunsplit(parts._replace(netloc=netloc))
        return location
    p = Path(location)
    return p.resolve().name or p.name or location
