"""Digest manifest of a checkpoint: per-file SHA-256 and size, and one root digest.

The root digest binds relative paths, sizes and contents (see docs/certificate.md):
``sha256(canonical_json({"version": 1, "files": [{"path", "size", "sha256"} sorted by path]}))``
where canonical JSON is ``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=True)``.
For a single file, ``path`` is its file name.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from provscan.errors import ProvscanError

CHUNK = 8 * 1024 * 1024
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class FileDigest:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    name: str
    files: tuple[FileDigest, ...]
    root_sha256: str

    def to_dict(self) -> dict:
        return {"version": MANIFEST_VERSION, "name": self.name, "root_sha256": self.root_sha256,
                "files": [asdict(f) for f in self.files]}


def root_digest(files: list[FileDigest] | tuple[FileDigest, ...]) -> str:
    body = {"version": MANIFEST_VERSION,
            "files": [asdict(f) for f in sorted(files, key=lambda f: f.path)]}
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return hashlib.sha256(data).hexdigest()


def list_files(path: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, absolute path) of every regular file; links are refused."""
    path = Path(path)
    if not path.exists():
        raise ProvscanError(f"no such file or directory: {path}")
    if path.is_symlink():
        raise ProvscanError(f"{path} is a symbolic link; pass the real path")
    if path.is_file():
        return [(path.name, path)]
    out = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for n in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            full = Path(root) / n
            rel = full.relative_to(path).as_posix()
            if full.is_symlink():
                raise ProvscanError(f"{rel}: symbolic links inside a checkpoint are refused")
            if full.is_file():
                out.append((rel, full))
    if not out:
        raise ProvscanError(f"{path} contains no files")
    return sorted(out)


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def compute_manifest(path: Path, workers: int | None = None) -> Manifest:
    """Hash every file of ``path`` (streamed, files in parallel threads; hashlib releases the GIL)."""
    path = Path(path)
    entries = list_files(path)
    workers = workers or min(len(entries), os.cpu_count() or 1, 8)
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        digests = list(pool.map(lambda e: hash_file(e[1]), entries))
    files = tuple(FileDigest(rel, full.stat().st_size, d) for (rel, full), d in zip(entries, digests))
    return Manifest(name=path.resolve().name, files=files, root_sha256=root_digest(files))
