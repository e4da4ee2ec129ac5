"""One open path: resolve → digest + file-safety scan → load → identity re-check.

:func:`open_checkpoint` is the only function that opens a checkpoint (the scan pipeline,
``inspect``, reference models, injector helpers all call it). It guarantees that the digest, the
safety verdict and the loaded model are about the same bytes (docs/certificate.md, "What the
digest binds"):

1. Resolve: a ``resolve_location`` hook may turn a remote location into a private local copy and
   a pinned identity; a local path resolves to itself; anything else (an endpoint URL) has no
   files and goes straight to ``open_target``.
2. Pin: list every file (symbolic links and special files refused) and record its identity
   (device, inode, size, mtime_ns, ctime_ns) *before* reading anything.
3. Digest (streamed SHA-256 per file) and file-safety scan (nothing executed).
4. Load through ``open_target`` only when the scan says ``safe``.
5. Re-check: list the files again and compare the set and every identity with the pin, then
   re-hash every file (streamed, bounded memory) and compare with the digest. Any difference
   discards the loaded target (``load_error``) and marks the checkpoint ``changed``: the scan is
   then inconclusive, never certified under a digest of bytes that were not the ones loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provscan.digest import FileDigest, Manifest, compute_manifest, digest_file, list_files
from provscan.errors import ProvscanError, missing_extra

if TYPE_CHECKING:
    from provscan.plugins import Host
    from provscan.safety import SafetyReport
    from provscan.targets.base import OpenOptions, ResolvedLocation, Target


@dataclass(frozen=True)
class FileIdentity:
    """What must not change between the digest and the end of the load."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        st = os.lstat(path)
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class OpenedCheckpoint:
    """What :func:`open_checkpoint` learned about one location.

    ``path`` is the local path that was digested, scanned and loaded (None for an endpoint);
    ``identity`` the pinned identity from ``resolve_location`` (empty for a plain local path or an
    endpoint); ``manifest``/``safety`` the digest and file-safety report (None for an endpoint);
    ``target`` the loaded model or None, with ``load_error`` saying why; ``loaded`` whether a
    load was attempted and succeeded; ``changed`` a description when the files changed while they
    were being opened (then ``target`` is None and nothing about them may be certified).
    """

    location: str
    path: Path | None
    identity: dict[str, str] = field(default_factory=dict)
    manifest: Manifest | None = None
    safety: SafetyReport | None = None
    target: Target | None = None
    load_error: str | None = None
    changed: str | None = None
    cleanup: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    @property
    def is_local(self) -> bool:
        return self.path is not None

    def require_target(self) -> Target:
        """The loaded target, or a :class:`~provscan.errors.ProvscanError` saying why there is none."""
        if self.target is None:
            raise ProvscanError(f"{self.location}: {self.load_error or 'not loaded'}")
        return self.target

    def close(self) -> None:
        """Remove a private copy made by ``resolve_location`` (a no-op otherwise)."""
        if self.cleanup is not None:
            self.cleanup()

    def __enter__(self) -> OpenedCheckpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pin_files(path: Path, ignore: tuple[str, ...] = ()) -> dict[str, FileIdentity]:
    """Relative path → identity of every file under ``path`` (refusing links/special files),
    except those matching an ``ignore`` glob."""
    out: dict[str, FileIdentity] = {}
    for rel, full in list_files(path, ignore):
        try:
            out[rel] = FileIdentity.of(full)
        except OSError as exc:
            raise ProvscanError(f"{rel}: cannot read ({exc.strerror or exc})") from None
    return out


def check_unchanged(path: Path, pins: dict[str, FileIdentity], manifest: Manifest,
                    rehash: bool = True, ignore: tuple[str, ...] = ()) -> str | None:
    """None when ``path`` still holds exactly the pinned files with the digested bytes.

    Compares the set of files and each identity (device, inode, size, mtime_ns, ctime_ns), then
    re-hashes every file (streamed) and compares with ``manifest``. Returns a one-line reason on
    the first difference.
    """
    try:
        now = pin_files(path, ignore)
    except ProvscanError as exc:
        return str(exc)
    if set(now) != set(pins):
        added, removed = sorted(set(now) - set(pins)), sorted(set(pins) - set(now))
        return f"files added {added[:3]} / removed {removed[:3]}"
    for rel, ident in pins.items():
        if now[rel] != ident:
            return f"{rel}: replaced or modified (inode, size or timestamps differ)"
    if rehash:
        full = {rel: f for rel, f in list_files(path, ignore)}
        for fd in manifest.files:
            try:
                again: FileDigest = digest_file(fd.path, full[fd.path])
            except ProvscanError as exc:
                return str(exc)
            if again.sha256 != fd.sha256 or again.size != fd.size:
                return f"{fd.path}: content differs from the digest"
    return None


#: files the built-in loaders read at the top of a directory (transformers, provscan classifiers)
LOADER_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle", "*.joblib",
                "*.gguf", "*.h5", "*.keras", "*.msgpack", "*.npy", "*.npz", "*.json", "*.model", "*.spm",
                "*.txt", "*.jinja", "*.tiktoken", "*.py")


def check_ignorable(path: Path, ignore: tuple[str, ...]) -> None:
    """Refuse (usage error) an ``--ignore`` list that would hide a file a loader reads.

    Ignored files are neither digested nor scanned, so a loader must never read them: a
    top-level file matching :data:`LOADER_FILES`, or anything inside a sentence-transformers
    module folder (``1_Pooling/``...), cannot be ignored. A single-file target ignores nothing.
    """
    import fnmatch

    from provscan.digest import ignored_files

    for rel in ignored_files(path, ignore):
        top = "/" not in rel
        module_dir = not top and rel.split("/", 1)[0][:1].isdigit() and "_" in rel.split("/", 1)[0]
        if (top and any(fnmatch.fnmatchcase(rel, g) for g in LOADER_FILES)) or module_dir \
                or (top and (path / rel).is_dir() and rel[:1].isdigit() and "_" in rel):
            raise ProvscanError(f"--ignore would leave out {rel}, which a loader reads: it cannot be "
                                "ignored (ignored files are neither digested nor scanned)")


def _load(host: Host, location: str, options: OpenOptions) -> tuple[Target | None, str | None]:
    try:
        target = host.hook.open_target(location=location, options=options, host=host)
    except ProvscanError as exc:
        return None, str(exc)
    except ModuleNotFoundError as exc:  # the models extra is not installed: not loaded, say why
        extra = missing_extra(exc)
        if extra is None:
            raise
        return None, f"not loaded: {extra}"
    if target is None:
        return None, f"no installed opener understands {location}"
    target.host = host
    target.options = options
    return target, None


def resolve(host: Host, location: str, options: OpenOptions) -> ResolvedLocation | None:
    """The ``resolve_location`` hook's answer, a local path as itself, or None (an endpoint)."""
    from provscan.targets.base import ResolvedLocation

    resolved = host.hook.resolve_location(location=location, options=options)
    if resolved is not None:
        if not isinstance(resolved, ResolvedLocation):
            raise ProvscanError(f"resolve_location returned {type(resolved).__name__}, "
                                "not a ResolvedLocation")
        return resolved
    if options.revision:
        raise ProvscanError(f"--revision applies to locations with revisions (hf://org/name), not to {location}")
    if os.path.lexists(location):
        return ResolvedLocation(Path(location))
    if "://" not in location:
        raise ProvscanError(f"no such file or directory: {location}")
    return None


def open_checkpoint(host: Host, location: str | Path, options: OpenOptions | None = None, *,
                    load: bool = True) -> OpenedCheckpoint:
    """Resolve, digest, safety-scan and (when ``load`` and the scan says safe) load ``location``.

    Raises :class:`~provscan.errors.ProvscanError` for input errors (no such path, a symbolic
    link, an empty directory, an unresolvable location). A checkpoint that is unsafe, cannot be
    loaded or changed while it was opened is not an error: the result has ``target`` None and
    ``load_error`` (and ``changed``) saying why. Close the result (or use it as a context manager)
    to remove a private copy made by a ``resolve_location`` hook.
    """
    from provscan.safety import SafetyVerdict, scan_path
    from provscan.targets.base import OpenOptions

    options = options or OpenOptions()
    location = str(location)
    resolved = resolve(host, location, options)
    if resolved is None:  # an endpoint: no files to digest or scan
        remote, why = _load(host, location, options) if load else (None, "not loaded (asked not to)")
        return OpenedCheckpoint(location, None, target=remote, load_error=why)
    try:
        path = Path(resolved.path)
        ignore = tuple(options.ignore)
        check_ignorable(path, ignore)
        pins = pin_files(path, ignore)
        manifest = compute_manifest(path, ignore=ignore)
        safety = scan_path(path, ignore)
        target: Target | None = None
        error: str | None = None
        if safety.verdict != SafetyVerdict.SAFE:
            error = f"not loaded: file-safety verdict is {safety.verdict.value}"
        elif load:
            target, error = _load(host, str(path), options)
        else:
            error = "not loaded (asked not to)"
        changed = check_unchanged(path, pins, manifest, ignore=ignore)
        if changed is not None:
            target, error = None, f"the checkpoint changed while it was being opened ({changed}); nothing loaded is trusted"
        if target is not None:
            target.manifest, target.safety = manifest, safety
        return OpenedCheckpoint(location, path, dict(resolved.identity), manifest, safety, target,
                                error, changed, resolved.cleanup)
    except BaseException:
        if resolved.cleanup is not None:
            resolved.cleanup()
        raise


def describe(opened: OpenedCheckpoint) -> dict[str, Any]:
    """A short JSON-ready summary (location, path, identity, digest, safety, load status)."""
    return {"location": opened.location, "path": None if opened.path is None else str(opened.path),
            "identity": dict(opened.identity),
            "root_sha256": opened.manifest.root_sha256 if opened.manifest else None,
            "safety": opened.safety.verdict.value if opened.safety else None,
            "loaded": opened.target is not None, "load_error": opened.load_error,
            "changed": opened.changed}
