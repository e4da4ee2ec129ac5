"""``models:/NAME/VERSION`` and ``models:/NAME@ALIAS``: parse, pin, download to a private copy.

The registry is the one named by ``OpenOptions.extra["mlflow.tracking_uri"]`` or, when unset, by
``MLFLOW_TRACKING_URI`` (the registry URI is the same server; ``MLFLOW_REGISTRY_URI`` overrides
it, as in MLflow). An alias is resolved to its version once, before anything is downloaded, and the
identity names that version, so the certificate never depends on where the alias points later.

The version's artifacts are listed first and refused when they exceed the download cap
(:data:`DEFAULT_MAX_BYTES`, :data:`DEFAULT_MAX_FILES`; ``extra["mlflow.max_bytes"]`` /
``PROVSCAN_MLFLOW_MAX_BYTES`` change it); every file is then downloaded one at a time into a fresh
``0700`` temporary directory and the sizes on disk are checked again against the same cap.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provscan import ProvscanError

SCHEME = "models:/"
DEFAULT_MAX_BYTES = 16 * 1024**3  # 16 GiB: larger than any single-node checkpoint we scan
DEFAULT_MAX_FILES = 10_000
MAX_BYTES_ENV = "PROVSCAN_MLFLOW_MAX_BYTES"
URI_KEY = "mlflow.tracking_uri"
MAX_BYTES_KEY = "mlflow.max_bytes"
_VERSION = re.compile(r"^[1-9][0-9]{0,17}$")
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``models:/`` URI: a name and exactly one of version or alias."""

    name: str
    version: str | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return f"{SCHEME}{self.name}/{self.version}" if self.version else f"{SCHEME}{self.name}@{self.alias}"


def is_models_uri(location: str) -> bool:
    return location.startswith(SCHEME)


def parse_models_uri(location: str) -> ModelRef:
    """Parse ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``; anything else is an input error."""
    if not is_models_uri(location):
        raise ProvscanError(f"{location!r} is not a models:/ URI")
    rest = location[len(SCHEME):]
    hint = "expected models:/NAME/VERSION or models:/NAME@ALIAS"
    if rest.startswith("/"):
        raise ProvscanError(f"{location}: a registry host in the URI is not supported ({hint}; "
                            f"set the registry with MLFLOW_TRACKING_URI)")
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        if not _ALIAS.match(alias):
            raise ProvscanError(f"{location}: invalid alias {alias!r} ({hint})")
        ref = ModelRef(name, alias=alias)
    elif "/" in rest:
        name, version = rest.rsplit("/", 1)
        if not _VERSION.match(version):
            raise ProvscanError(f"{location}: version {version!r} is not a positive integer ({hint}; "
                                "stages such as Production are not pinned identities)")
        ref = ModelRef(name, version=version)
    else:
        raise ProvscanError(f"{location}: no version or alias ({hint})")
    if not name or name != name.strip() or "/" in name or any(ord(c) < 32 for c in name):
        raise ProvscanError(f"{location}: invalid model name {name!r} ({hint})")
    return ref


def tracking_uri(options: Any = None) -> str:
    """The registry to talk to: ``extra["mlflow.tracking_uri"]``, else ``MLFLOW_TRACKING_URI``."""
    extra = getattr(options, "extra", None) or {}
    uri = extra.get(URI_KEY) or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise ProvscanError("models:/ locations need a registry: set MLFLOW_TRACKING_URI "
                            "(or OpenOptions.extra['mlflow.tracking_uri'])")
    return str(uri)


def registry_uri(tracking: str) -> str:
    return os.environ.get("MLFLOW_REGISTRY_URI") or tracking


def public_uri(uri: str) -> str:
    """``uri`` without credentials (``user:password@``), query or fragment: what a certificate may
    record."""
    base = re.split(r"[?#]", uri, maxsplit=1)[0]
    return _USERINFO.sub(r"\1", base)


def max_bytes(options: Any = None) -> int:
    extra = getattr(options, "extra", None) or {}
    raw = extra.get(MAX_BYTES_KEY) or os.environ.get(MAX_BYTES_ENV)
    if raw is None:
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ProvscanError(f"{MAX_BYTES_ENV}: {raw!r} is not a number of bytes") from None
    if value <= 0:
        raise ProvscanError(f"{MAX_BYTES_ENV}: must be positive, got {value}")
    return value


def client_for(uri: str) -> Any:
    """An ``MlflowClient`` bound to ``uri`` (tracking) and its registry, no global state."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=registry_uri(uri))


def pin(client: Any, ref: ModelRef) -> Any:
    """The ``ModelVersion`` that ``ref`` names now (an alias resolved once, here)."""
    from mlflow.exceptions import MlflowException

    try:
        if ref.alias is not None:
            return client.get_model_version_by_alias(ref.name, ref.alias)
        return client.get_model_version(ref.name, ref.version)
    except MlflowException as exc:
        raise ProvscanError(f"{ref}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _safe_relpath(path: str) -> str:
    """An artifact path from the server, refused unless it is a plain relative path."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise ProvscanError(f"the registry listed an artifact with an unsafe path: {path!r}")
    return path


def list_files(repo: Any, limit_files: int) -> list[tuple[str, int | None]]:
    """Every file under the artifact repository's root: ``(relative path, listed size)``."""
    out: list[tuple[str, int | None]] = []
    stack: list[str | None] = [None]
    while stack:
        prefix = stack.pop()
        for info in repo.list_artifacts(prefix):
            rel = _safe_relpath(info.path)
            if info.is_dir:
                stack.append(rel)
            else:
                out.append((rel, info.file_size))
            if len(out) + len(stack) > limit_files:
                raise ProvscanError(f"the model version has more than {limit_files} artifacts (cap)")
    return sorted(out)


def download_version(uri: str, mv: Any, cap: int, limit_files: int = DEFAULT_MAX_FILES) -> Path:
    """Download ``mv``'s artifacts into a fresh private directory; returns it (caller removes it)."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    tmp = Path(tempfile.mkdtemp(prefix="provscan-mlflow-"))
    os.chmod(tmp, 0o700)
    try:
        client = client_for(uri)
        download_uri = client.get_model_version_download_uri(mv.name, mv.version)
        repo = get_artifact_repository(download_uri, tracking_uri=uri, registry_uri=registry_uri(uri))
        files = list_files(repo, limit_files)
        if not files:
            raise ProvscanError(f"models:/{mv.name}/{mv.version}: the version has no artifacts")
        listed = sum(size or 0 for _, size in files)
        if listed > cap:
            raise ProvscanError(f"models:/{mv.name}/{mv.version}: {listed} bytes of artifacts exceed the "
                                f"download cap of {cap} bytes ({MAX_BYTES_ENV})")
        dest = tmp / "model"
        dest.mkdir(mode=0o700)
        total = 0
        for rel, _ in files:
            local = Path(repo.download_artifacts(rel, dst_path=str(dest)))
            if local.is_symlink() or not local.is_file():
                raise ProvscanError(f"artifact {rel} did not download as a regular file")
            total += local.stat().st_size
            if total > cap:
                raise ProvscanError(f"models:/{mv.name}/{mv.version}: artifacts exceed the download cap "
                                    f"of {cap} bytes ({MAX_BYTES_ENV})")
        return tmp
    except MlflowException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ProvscanError(f"models:/{mv.name}/{mv.version}: download failed: {_first_line(exc)}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def identity(uri: str, mv: Any, ref: ModelRef) -> dict[str, str]:
    """The pinned identity recorded in the certificate subject (strings only, no credentials)."""
    ident = {"type": "mlflow", "registry": public_uri(registry_uri(uri)), "name": str(mv.name),
             "version": str(mv.version), "source": public_uri(str(mv.source or ""))}
    if getattr(mv, "run_id", None):
        ident["run_id"] = str(mv.run_id)
    if ref.alias is not None:
        ident["alias"] = ref.alias
    return ident


def resolve(location: str, options: Any = None) -> Any:
    """Resolve a ``models:/`` URI to a ``ResolvedLocation`` (a private copy + identity)."""
    from provscan import ResolvedLocation

    ref = parse_models_uri(location)
    uri = tracking_uri(options)
    cap = max_bytes(options)
    mv = pin(client_for(uri), ref)
    tmp = download_version(uri, mv, cap)
    return ResolvedLocation(path=tmp / "model", identity=identity(uri, mv, ref),
                            cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True))
