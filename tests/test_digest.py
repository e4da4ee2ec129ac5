"""Digest manifests: per-file SHA-256 equals sha256sum, the root digest binds names and bytes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provscan import digest
from provscan.digest import (
    CHUNK,
    FileDigest,
    compute_manifest,
    digest_file,
    root_digest,
)
from provscan.errors import ProvscanError


def sha256sum(paths: list[Path]) -> dict[str, str]:
    """Digests printed by coreutils ``sha256sum`` (hashlib when it is not installed)."""
    if shutil.which("sha256sum"):
        out = subprocess.run(["sha256sum", "--", *map(str, paths)], check=True,
                             capture_output=True, text=True).stdout
        return {line[66:]: line[:64] for line in out.splitlines()}
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "ckpt"
    (root / "sub" / "deeper").mkdir(parents=True)
    rng = __import__("random").Random(0)
    (root / "empty.bin").write_bytes(b"")
    (root / "config.json").write_text('{"a": 1}')
    (root / "sub" / "weights.bin").write_bytes(rng.randbytes(4 * CHUNK + 12345))
    (root / "sub" / "deeper" / "name with spaces.txt").write_bytes(rng.randbytes(1000))
    (root / "sub" / "ünï.bin").write_bytes(rng.randbytes(3 * 1024 * 1024 + 7))
    return root


def test_matches_sha256sum_for_every_file(tree, run_cli):
    res = run_cli("digest", tree, "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    paths = sorted(p for p in tree.rglob("*") if p.is_file())
    expected = sha256sum(paths)
    assert [f["path"] for f in data["files"]] == sorted(p.relative_to(tree).as_posix() for p in paths)
    for f in data["files"]:
        full = tree / f["path"]
        assert f["sha256"] == expected[str(full)], f["path"]
        assert f["size"] == full.stat().st_size
    assert data["name"] == "ckpt" and data["version"] == 1


def test_root_digest_definition(tree):
    """Recompute the documented definition independently of the implementation."""
    m = compute_manifest(tree)
    files = sorted(({"path": p.relative_to(tree).as_posix(), "size": p.stat().st_size,
                     "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                    for p in tree.rglob("*") if p.is_file()), key=lambda f: f["path"])
    body = json.dumps({"version": 1, "files": files}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True)
    assert m.root_sha256 == hashlib.sha256(body.encode()).hexdigest()


def test_text_output_and_single_file(tree, run_cli):
    res = run_cli("digest", tree / "config.json")
    assert res.exit_code == 0
    line, root = res.stdout.splitlines()
    assert line.split() == [hashlib.sha256(b'{"a": 1}').hexdigest(), "8", "config.json"]
    files = [FileDigest("config.json", 8, line.split()[0])]
    assert root.startswith(f"root sha256:{root_digest(files)}")


def test_workers_and_chunking_agree(tree):
    one = compute_manifest(tree, workers=1)
    many = compute_manifest(tree, workers=4, show_progress=True)
    assert one == many
    big = tree / "sub" / "weights.bin"
    want = hashlib.sha256(big.read_bytes()).hexdigest()
    small = tree / "sub" / "deeper" / "name with spaces.txt"
    for chunk in (1, 999, 4096, 1 << 20):
        got = digest_file("x", small, chunk=chunk)
        assert got.sha256 == hashlib.sha256(small.read_bytes()).hexdigest()
        assert digest_file("w", big, chunk=chunk * 7 + 1).sha256 == want


def test_progress_callback_counts_every_byte(tree):
    seen = []
    big = tree / "sub" / "weights.bin"
    digest_file("w", big, on_bytes=seen.append, chunk=1 << 20)
    assert sum(seen) == big.stat().st_size and len(seen) > 4


def test_file_growing_while_hashed_is_an_error(tmp_path):
    p = tmp_path / "growing.bin"
    p.write_bytes(b"\0" * 100_000)

    def grow(_: int) -> None:
        with open(p, "ab") as f:
            f.write(b"x" * 10)

    with pytest.raises(ProvscanError, match="changed while it was being hashed"):
        digest_file("growing.bin", p, on_bytes=grow, chunk=4096)


@pytest.mark.parametrize("kind", ["file-link", "dir-link", "fifo", "empty-dir", "missing"])
def test_refusals_are_one_line_exit_2(tmp_path, run_cli, kind):
    root = tmp_path / "ckpt"
    root.mkdir()
    (root / "real.bin").write_bytes(b"abc")
    if kind == "file-link":
        (root / "link.bin").symlink_to(root / "real.bin")
    elif kind == "dir-link":
        (root / "linkdir").symlink_to(tmp_path)
    elif kind == "fifo":
        os.mkfifo(root / "pipe")
    elif kind == "empty-dir":
        (root / "real.bin").unlink()
    target = tmp_path / "nope" if kind == "missing" else root
    res = run_cli("digest", target)
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: "), res.stderr
    assert res.stdout == ""


def test_unreadable_file_is_named(tmp_path, run_cli):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    p = tmp_path / "secret.bin"
    p.write_bytes(b"x")
    p.chmod(0)
    res = run_cli("digest", tmp_path)
    assert res.exit_code == 2 and "secret.bin" in res.stderr


names = st.text(alphabet="abcXYZ09_.-", min_size=1, max_size=6).filter(lambda s: s not in {".", ".."})
trees = st.dictionaries(names, st.binary(max_size=64), min_size=1, max_size=4)


def _write(files: dict[str, bytes]) -> tuple[tempfile.TemporaryDirectory, Path]:
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name) / "t"
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)
    return tmp, root


def _root(files: dict[str, bytes]) -> str:
    tmp, root = _write(files)
    with tmp:
        return compute_manifest(root, workers=2).root_sha256


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=trees, data=st.data())
def test_root_changes_when_any_byte_changes(files, data):
    name = data.draw(st.sampled_from(sorted(files)))
    content = files[name]
    if content:
        i = data.draw(st.integers(0, len(content) - 1))
        delta = data.draw(st.integers(1, 255))
        changed = content[:i] + bytes([(content[i] + delta) % 256]) + content[i + 1:]
    else:
        changed = data.draw(st.binary(min_size=1, max_size=4))
    assert _root(files) != _root({**files, name: changed})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=trees, data=st.data())
def test_root_changes_when_any_name_changes(files, data):
    old = data.draw(st.sampled_from(sorted(files)))
    new = data.draw(names.filter(lambda n: n not in files))
    renamed = {(new if k == old else k): v for k, v in files.items()}
    assert _root(files) != _root(renamed)


def test_root_is_independent_of_creation_order_and_timestamps(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, order in ((a, ["x", "y", "z"]), (b, ["z", "y", "x"])):
        root.mkdir()
        for n in order:
            (root / n).write_text(n)
    os.utime(b / "x", (0, 0))
    assert compute_manifest(a).root_sha256 == compute_manifest(b).root_sha256


def test_manifest_module_docstring_states_the_definition():
    assert "sha256(canonical_json(" in (digest.__doc__ or "")
