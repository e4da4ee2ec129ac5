"""``hf://org/name[@revision]``: Hugging Face Hub repositories, resolved to a pinned commit.

The ``resolve_location`` hook turns the location into a private local copy and an identity
``{"type": "hf", "repo_id", "revision", "commit", "endpoint", "source"}``:

1. Resolve: the revision (``@rev`` or ``--revision``, default ``main``) becomes a commit SHA —
   from the Hub's model-info route (``huggingface_hub.HfApi.model_info``, which also lists the
   files), or with ``HF_HUB_OFFLINE=1`` from the local cache (``refs/<rev>``).
2. Select only the files a loader needs (:func:`select_files`): top-level configs, tokenizer
   files and templates, the safetensors weights (``.bin`` only when there is no safetensors), the
   sentence-transformers module folders; no other frameworks' weights, no ONNX/OpenVINO, no docs.
3. Download them into the Hugging Face cache at that commit (``hf_hub_download``; skipped
   offline).
4. Materialise a private copy: every selected file of ``snapshots/<commit>/`` is a symbolic link
   to ``blobs/<etag>``; the link must stay inside the repository's ``blobs/`` folder, the blob
   must be a regular file, and its bytes must hash to its name (``sha256`` for LFS files, the git
   blob ``sha1`` otherwise) while they are copied into a fresh private directory (mode 0700).
   The pipeline then digests, scans and loads that copy, which nobody else can change; the
   symbolic links themselves are never given to the digest or the loader. ``cleanup`` removes it.

Errors: a malformed location, an unknown repository or revision, or a commit missing from the
cache offline are usage errors (exit 2, one line); a network failure or a download that breaks
mid-way, a corrupt cache blob, or a copy over ``PROVSCAN_HF_MAX_BYTES`` (default 64 GiB) raise
:class:`LocationUnavailableError` (exit 3: nothing was scanned, so nothing can be certified).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import provscan
from provscan.errors import EXIT_INCONCLUSIVE, ProvscanError

if TYPE_CHECKING:
    from provscan.targets.base import OpenOptions, ResolvedLocation

SCHEME = "hf://"
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
REPO_ID = re.compile(rf"^{_PART}/{_PART}$")
REVISION = re.compile(r"^[A-Za-z0-9._/-]{1,255}$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_REVISION = "main"
DEFAULT_MAX_BYTES = 64 << 30
_COPY_CHUNK = 1 << 20

#: top-level files every loader may read (configs, tokenizers, templates)
TOP_LEVEL_DATA = ("*.json", "*.txt", "*.model", "*.spm", "*.jinja", "*.tiktoken")
SAFETENSORS = "*.safetensors"
TORCH_BINS = ("pytorch_model.bin", "pytorch_model-*.bin")
#: files inside a sentence-transformers module folder (``1_Pooling/config.json``...)
MODULE_FILES = ("*.json", "*.safetensors")


class LocationUnavailableError(ProvscanError):
    """The location names something real, but its files could not be fetched intact: nothing was
    scanned (exit 3, inconclusive)."""

    exit_code = EXIT_INCONCLUSIVE


def parse_location(location: str, revision: str | None = None) -> tuple[str, str]:
    """``hf://org/name[@rev]`` (+ ``--revision``) → (repo id, revision); ProvscanError if malformed."""
    rest = location[len(SCHEME):]
    repo_id, at, rev = rest.partition("@")
    repo_id = repo_id.rstrip("/")
    if not REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id:
        raise ProvscanError(f"{location}: expected hf://org/name[@revision] (letters, digits, '.', '_', '-')")
    if at and not rev:
        raise ProvscanError(f"{location}: empty revision after '@'")
    if rev and revision and rev != revision:
        raise ProvscanError(f"{location}: names revision {rev!r} but --revision says {revision!r}")
    rev = rev or revision or DEFAULT_REVISION
    if not REVISION.match(rev) or ".." in rev or rev.startswith("/") or rev.endswith("/"):
        raise ProvscanError(f"{location}: malformed revision {rev!r}")
    return repo_id, rev


def select_files(files: list[str]) -> list[str]:
    """The files a loader needs, from a repository's file list (POSIX paths)."""
    top = [f for f in files if "/" not in f]
    chosen = {f for f in top if any(fnmatch.fnmatchcase(f, g) for g in TOP_LEVEL_DATA)}
    weights = [f for f in top if fnmatch.fnmatchcase(f, SAFETENSORS)]
    if not weights:
        weights = [f for f in top if any(fnmatch.fnmatchcase(f, g) for g in TORCH_BINS)]
        chosen |= {f for f in top if f == "pytorch_model.bin.index.json"}
    else:
        chosen.discard("pytorch_model.bin.index.json")
    chosen |= set(weights)
    if "modules.json" in top:
        for f in files:
            folder, _, rest = f.partition("/")
            if (rest and "/" not in rest and re.match(r"^\d+_\w+$", folder)
                    and any(fnmatch.fnmatchcase(rest, g) for g in MODULE_FILES)):
                chosen.add(f)
    return sorted(chosen)


def cache_dir() -> Path:
    """The Hugging Face cache, from the environment at call time (``HF_HUB_CACHE``, ``HF_HOME``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def max_bytes() -> int:
    raw = os.environ.get("PROVSCAN_HF_MAX_BYTES", "")
    try:
        return int(raw) if raw else DEFAULT_MAX_BYTES
    except ValueError:
        raise ProvscanError(f"PROVSCAN_HF_MAX_BYTES={raw!r} is not an integer") from None


def storage_folder(repo_id: str) -> Path:
    return cache_dir() / ("models--" + repo_id.replace("/", "--"))


# --- resolving a revision ----------------------------------------------------------------------
def cached_commit(repo_id: str, revision: str) -> str:
    """The commit ``revision`` names in the local cache (a commit, or ``refs/<revision>``)."""
    storage = storage_folder(repo_id)
    if COMMIT.match(revision):
        commit = revision
    else:
        ref = storage / "refs" / revision
        try:
            commit = ref.read_text(encoding="ascii").strip() if ref.is_file() else ""
        except (OSError, UnicodeDecodeError):
            commit = ""
        if not COMMIT.match(commit):
            raise ProvscanError(f"hf://{repo_id}@{revision}: not in the local cache {cache_dir()} "
                                "(HF_HUB_OFFLINE=1: nothing is downloaded)")
    if not (storage / "snapshots" / commit).is_dir():
        raise ProvscanError(f"hf://{repo_id}@{revision}: commit {commit[:12]} is not in the local cache "
                            f"{cache_dir()} (HF_HUB_OFFLINE=1: nothing is downloaded)")
    return commit


def cached_files(repo_id: str, commit: str) -> list[str]:
    """Relative paths of every entry under ``snapshots/<commit>/`` (links listed, not followed)."""
    root = storage_folder(repo_id) / "snapshots" / commit
    out: list[str] = []
    for base, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(base, d))]
        out.extend(Path(base, n).relative_to(root).as_posix() for n in names)
    return sorted(out)


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise ProvscanError("hf:// locations need huggingface_hub (pip install 'provscan[models]')") from None
    return huggingface_hub


def remote_files(repo_id: str, revision: str) -> tuple[str, list[str], dict[str, int]]:
    """(commit, files, sizes) from the Hub's model-info route at ``revision``."""
    huggingface_hub = _hub()
    from huggingface_hub import errors

    api = huggingface_hub.HfApi(endpoint=endpoint())
    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    except errors.RevisionNotFoundError:
        raise ProvscanError(f"hf://{repo_id}@{revision}: no such revision on {endpoint()}") from None
    except errors.RepositoryNotFoundError:
        raise ProvscanError(f"hf://{repo_id}: no such repository on {endpoint()} (or it is private)") from None
    except (errors.HfHubHTTPError, OSError, Exception) as exc:  # noqa: BLE001 - httpx errors vary by version
        raise LocationUnavailableError(f"hf://{repo_id}@{revision}: the Hub at {endpoint()} could not be "
                                       f"reached ({_first_line(exc)})") from None
    commit = str(info.sha or "")
    if not COMMIT.match(commit):
        raise LocationUnavailableError(f"hf://{repo_id}@{revision}: the Hub returned no commit for it")
    files: list[str] = []
    sizes: dict[str, int] = {}
    for sib in info.siblings or []:
        files.append(str(sib.rfilename))
        size = getattr(sib, "size", None)
        if isinstance(size, int):
            sizes[str(sib.rfilename)] = size
    return commit, files, sizes


def download(repo_id: str, commit: str, files: list[str]) -> None:
    """Fetch ``files`` at ``commit`` into the cache (files already there are not fetched again)."""
    huggingface_hub = _hub()

    for f in files:
        try:
            huggingface_hub.hf_hub_download(repo_id, f, revision=commit, cache_dir=str(cache_dir()),
                                            endpoint=endpoint())
        except Exception as exc:  # noqa: BLE001 - any failure mid-way: nothing usable to scan
            raise LocationUnavailableError(f"hf://{repo_id}@{commit[:12]}: downloading {f} failed "
                                           f"({_first_line(exc)}); nothing was scanned") from None


def remember_ref(repo_id: str, revision: str, commit: str) -> None:
    """Record ``refs/<revision>`` in the cache (as huggingface_hub does), so that the same
    revision resolves offline later."""
    from provscan.fsutil import atomic_write_text

    if revision == commit:
        return
    ref = storage_folder(repo_id) / "refs" / revision
    try:
        ref.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(ref, commit)
    except OSError:
        pass  # a read-only cache: the scan itself does not need the ref


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


# --- the private copy --------------------------------------------------------------------------
def blob_for(repo_id: str, commit: str, rel: str) -> Path:
    """The regular file ``snapshots/<commit>/<rel>`` stands for: a link into the repository's
    ``blobs/`` folder (as huggingface_hub writes them), or a plain file in the snapshot."""
    storage = storage_folder(repo_id).resolve()
    snap = storage / "snapshots" / commit
    entry = snap / rel
    real = Path(os.path.realpath(entry))
    linked_parents = [p for p in entry.parents if snap in p.parents and p.is_symlink()]
    if linked_parents:
        raise LocationUnavailableError(f"hf://{repo_id}@{commit[:12]}: {rel} is under a linked folder; refused")
    if entry.is_symlink() and real.parent != storage / "blobs":
        raise LocationUnavailableError(f"hf://{repo_id}@{commit[:12]}: {rel} in the cache points outside "
                                       "the repository's blobs folder; refused")
    try:
        mode = os.lstat(real).st_mode
    except OSError as exc:
        raise LocationUnavailableError(f"hf://{repo_id}@{commit[:12]}: {rel} is missing from the cache "
                                       f"({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise LocationUnavailableError(f"hf://{repo_id}@{commit[:12]}: {rel} in the cache is not a regular file")
    return real


def copy_checked(src: Path, dst: Path, rel: str) -> int:
    """Copy ``src`` to ``dst`` (a new file) in one pass, checking the bytes against the blob's
    name when it is a hash (SHA-256 for LFS files, the git blob SHA-1 otherwise)."""
    name = src.name
    fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with open(fd, "rb") as fin, open(dst, "xb") as fout:
        st = os.fstat(fin.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise LocationUnavailableError(f"{rel}: not a regular file in the cache")
        sha256, git = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % st.st_size)
        size = 0
        while chunk := fin.read(_COPY_CHUNK):
            sha256.update(chunk)
            git.update(chunk)
            size += len(chunk)
            fout.write(chunk)
    if re.fullmatch(r"[0-9a-f]{64}", name) and sha256.hexdigest() != name:
        raise LocationUnavailableError(f"{rel}: the cached blob's SHA-256 is not its name (corrupt or altered cache)")
    if re.fullmatch(r"[0-9a-f]{40}", name) and (size != st.st_size or git.hexdigest() != name):
        raise LocationUnavailableError(f"{rel}: the cached blob's git hash is not its name (corrupt or altered cache)")
    return size


def materialise(repo_id: str, commit: str, files: list[str]) -> tuple[Path, Any]:
    """A private directory (0700) holding copies of ``files`` from the cached snapshot."""
    blobs = {rel: blob_for(repo_id, commit, rel) for rel in files}
    total = sum(b.stat().st_size for b in blobs.values())
    if total > max_bytes():
        raise LocationUnavailableError(f"hf://{repo_id}@{commit[:12]}: {total:,} bytes to copy, over "
                                       f"PROVSCAN_HF_MAX_BYTES={max_bytes():,}")
    tmp = Path(tempfile.mkdtemp(prefix="provscan-hf-"))

    def cleanup() -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    try:
        root = tmp / repo_id.split("/", 1)[1]
        root.mkdir()
        for rel, blob in sorted(blobs.items()):
            dst = root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            copy_checked(blob, dst, rel)
    except BaseException:
        cleanup()
        raise
    return root, cleanup


def resolve_hf(location: str, options: OpenOptions) -> ResolvedLocation:
    from provscan.targets.base import ResolvedLocation

    repo_id, revision = parse_location(location, options.revision)
    if offline():
        commit = cached_commit(repo_id, revision)
        files = select_files(cached_files(repo_id, commit))
        source = "cache"
    else:
        commit, listed, sizes = remote_files(repo_id, revision)
        files = select_files(listed)
        if not files:
            raise ProvscanError(f"hf://{repo_id}@{revision}: the repository has no files a loader reads")
        declared = sum(sizes.get(f, 0) for f in files)
        if declared > max_bytes():
            raise LocationUnavailableError(f"hf://{repo_id}@{revision}: {declared:,} bytes to download, over "
                                           f"PROVSCAN_HF_MAX_BYTES={max_bytes():,}; nothing downloaded")
        download(repo_id, commit, files)
        remember_ref(repo_id, revision, commit)
        source = "download"
    if not files:
        raise ProvscanError(f"hf://{repo_id}@{revision}: the cached snapshot has no files a loader reads")
    path, cleanup = materialise(repo_id, commit, files)
    identity = {"type": "hf", "repo_id": repo_id, "revision": revision, "commit": commit,
                "endpoint": endpoint(), "source": source, "files": json.dumps(files)}
    return ResolvedLocation(path, identity, cleanup)


@provscan.hookimpl(trylast=True)
def resolve_location(location: str, options: OpenOptions) -> ResolvedLocation | None:
    if not location.startswith(SCHEME):
        return None
    return resolve_hf(location, options)
