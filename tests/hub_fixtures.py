"""A Hugging Face Hub cache layout on disk, and a small Hub-compatible HTTP server on 127.0.0.1.

The server implements the routes huggingface_hub's ``HfApi.model_info`` and ``hf_hub_download``
call: ``GET /api/models/{repo}/revision/{rev}`` (commit and file list, ``X-Error-Code`` on 404)
and ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` (``X-Repo-Commit``, ``ETag``,
``Content-Length``). ``broken`` names files whose GET stops half-way.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".bin", ".h5", ".onnx", ".msgpack")


def etag_of(rel: str, data: bytes) -> str:
    """The etag the Hub gives a file: SHA-256 for LFS files, the git blob SHA-1 otherwise."""
    if rel.endswith(LFS_SUFFIXES):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write_cache(cache: Path, repo_id: str, commit: str, files: dict[str, bytes],
                refs: dict[str, str]) -> Path:
    """``models--org--name/{blobs,snapshots/<commit>,refs}`` as huggingface_hub writes it:
    content in ``blobs/<etag>``, relative symbolic links from the snapshot, refs holding the SHA."""
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    snap = storage / "snapshots" / commit
    for rel, data in files.items():
        blob = storage / "blobs" / etag_of(rel, data)
        blob.write_bytes(data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    for name, sha in refs.items():
        ref = storage / "refs" / name
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(sha)
    return snap


@dataclass
class FakeHub:
    """Repositories served: repo id -> (commit -> files), refs: repo id -> (name -> commit)."""

    repos: dict[str, dict[str, dict[str, bytes]]] = field(default_factory=dict)
    refs: dict[str, dict[str, str]] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def commit(self, repo: str, rev: str) -> str | None:
        if rev in self.repos.get(repo, {}):
            return rev
        return self.refs.get(repo, {}).get(rev)


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _error(self, status: int, code: str, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _route(self) -> None:
            path = unquote(urlparse(self.path).path)
            hub.requests.append((self.command, path))
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "revision":
                repo, rev = "/".join(parts[2:4]), "/".join(parts[5:])
                return self._info(repo, rev)
            if len(parts) >= 5 and parts[2] == "resolve":
                repo, rev, rel = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                return self._file(repo, rev, rel)
            self._error(404, "EntryNotFound", "no such route")

        def _info(self, repo: str, rev: str) -> None:
            if repo not in hub.repos:
                return self._error(404, "RepoNotFound", "Repository not found")
            commit = hub.commit(repo, rev)
            if commit is None:
                return self._error(404, "RevisionNotFound", "Invalid rev id")
            files = hub.repos[repo][commit]
            body = json.dumps({"id": repo, "modelId": repo, "sha": commit, "private": False,
                               "siblings": [{"rfilename": f, "size": len(d)} for f, d in sorted(files.items())]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _file(self, repo: str, rev: str, rel: str) -> None:
            commit = hub.commit(repo, rev) if repo in hub.repos else None
            if commit is None:
                return self._error(404, "RevisionNotFound" if repo in hub.repos else "RepoNotFound", "not found")
            data = hub.repos[repo][commit].get(rel)
            if data is None:
                return self._error(404, "EntryNotFound", "Entry not found")
            self.send_response(200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{etag_of(rel, data)}"')
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if self.command == "GET":
                if rel in hub.broken:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

        do_GET = do_HEAD = _route

    return Handler


class HubServer:
    """``with HubServer(hub) as url:`` serves ``hub`` on 127.0.0.1 until the block ends."""

    def __init__(self, hub: FakeHub) -> None:
        self.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        self.hub.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self.hub.url

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
