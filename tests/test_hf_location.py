"""hf://org/name[@revision]: offline from a real Hub cache layout, online from a local Hub endpoint."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import sys
from pathlib import Path

import pytest

from provscan.default_plugins.hf_hub import parse_location, select_files
from provscan.errors import ProvscanError

sys.path.insert(0, str(Path(__file__).parent))

from hub_fixtures import FakeHub, HubServer, read_tree, write_cache  # noqa: E402
from test_hub_snapshot import _encoder_snapshot  # noqa: E402

REPO = "org/tiny"
COMMIT = hashlib.sha1(b"provscan test commit 1").hexdigest()
DEV_COMMIT = hashlib.sha1(b"provscan test commit 2").hexdigest()


@pytest.fixture(scope="module")
def repo_files(tmp_path_factory) -> dict[str, bytes]:
    """A tiny encoder snapshot plus files no loader needs, one of them a malicious pickle."""
    files = read_tree(_encoder_snapshot(tmp_path_factory.mktemp("src") / "tiny"))
    files["pytorch_model.bin"] = pickle.dumps(os.system, protocol=2)  # must never be fetched
    files["onnx/model.onnx"] = b"\x08\x07junk"
    files["tf_model.h5"] = b"\x89HDF\r\n\x1a\njunk"
    return files


@pytest.fixture
def hf_env(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setenv("PROVSCAN_HOME", str(tmp_path / "home"))
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: under tox (HF_HUB_OFFLINE=1 for the
    # whole suite) the library would refuse the local test Hub even with the variable unset here.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return cache


def _statement(out: Path) -> dict:
    envelope = json.loads((out / "certificate.intoto.json").read_text())
    return json.loads(base64.b64decode(envelope["payload"]))


def test_parse_location():
    assert parse_location("hf://org/name") == ("org/name", "main")
    assert parse_location("hf://org/name@v1.0") == ("org/name", "v1.0")
    assert parse_location("hf://org/name", "refs/pr/1") == ("org/name", "refs/pr/1")
    for bad in ("hf://", "hf://name", "hf://org/name/extra", "hf://org/na me", "hf://org/name@",
                "hf://org/../x", "hf://-org/name", "hf://org/name@a..b"):
        with pytest.raises(ProvscanError):
            parse_location(bad)
    with pytest.raises(ProvscanError, match="--revision"):
        parse_location("hf://org/name@v1", "v2")


def test_select_files_prefers_safetensors():
    files = ["config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5", "README.md",
             ".gitattributes", "onnx/model.onnx", "vocab.txt", "modules.json", "1_Pooling/config.json",
             "openvino/openvino_model.bin", "flax_model.msgpack"]
    assert select_files(files) == ["1_Pooling/config.json", "config.json", "model.safetensors",
                                   "modules.json", "vocab.txt"]
    assert select_files(["config.json", "pytorch_model.bin"]) == ["config.json", "pytorch_model.bin"]


def test_offline_from_a_hub_cache(provscan_host, hf_env, repo_files, run_cli, tmp_path, monkeypatch):
    from provscan.keys import new_key

    snap = write_cache(hf_env, REPO, COMMIT, repo_files, {"main": COMMIT, "v1": COMMIT})
    assert (snap / "model.safetensors").is_symlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    new_key("ci")
    out = tmp_path / "out"
    res = run_cli("verify", f"hf://{REPO}@main", "-d", "file-safety", "--sign", "ci", "--out", out,
                  "--format", "json", "--quiet")
    assert res.exit_code == 0, res.output
    statement = _statement(out)
    subject = statement["subject"][0]
    names = [f["path"] for f in statement["predicate"]["target"]["manifest"]["files"]]
    assert "pytorch_model.bin" not in names and "model.safetensors" in names
    assert not any(n.startswith("onnx/") for n in names)
    assert subject["name"] == "tiny"
    assert subject["uri"] == f"hf://{REPO}@main"
    ann = subject["annotations"]
    assert (ann["type"], ann["repo_id"], ann["revision"], ann["commit"], ann["source"]) == (
        "hf", REPO, "main", COMMIT, "cache")
    assert statement["predicate"]["target"]["identity"]["commit"] == COMMIT
    assert (snap / "model.safetensors").is_symlink()  # the cache is left as it was
    # a tag resolves to the same commit and the same digest
    res2 = run_cli("verify", f"hf://{REPO}", "--revision", "v1", "-d", "file-safety", "--format", "json")
    assert res2.exit_code == 0, res2.output
    assert json.loads(res2.output)["target"]["manifest"]["root_sha256"] == subject["digest"]["sha256"]


def test_offline_errors_are_one_line(provscan_host, hf_env, repo_files, run_cli, monkeypatch):
    write_cache(hf_env, REPO, COMMIT, repo_files, {"main": COMMIT})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for loc in (f"hf://{REPO}@nope", "hf://org/missing", "hf://not a repo", f"hf://{REPO}@{DEV_COMMIT}"):
        res = run_cli("verify", loc, "-d", "file-safety")
        assert res.exit_code == 2, (loc, res.output)
        assert len(res.output.strip().splitlines()) == 1, res.output


def test_a_cache_link_outside_the_blobs_is_refused(provscan_host, hf_env, repo_files, run_cli, tmp_path,
                                                  monkeypatch):
    snap = write_cache(hf_env, REPO, COMMIT, repo_files, {"main": COMMIT})
    outside = tmp_path / "elsewhere.json"
    outside.write_text("{}")
    (snap / "config.json").unlink()
    os.symlink(outside, snap / "config.json")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = run_cli("verify", f"hf://{REPO}", "-d", "file-safety")
    assert res.exit_code == 3 and "outside" in res.output


def test_a_corrupt_cache_blob_is_not_scanned(provscan_host, hf_env, repo_files, run_cli, monkeypatch):
    snap = write_cache(hf_env, REPO, COMMIT, repo_files, {"main": COMMIT})
    blob = Path(os.path.realpath(snap / "model.safetensors"))
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = run_cli("verify", f"hf://{REPO}", "-d", "file-safety")
    assert res.exit_code == 3 and "SHA-256" in res.output


@pytest.fixture
def fake_hub(repo_files, hf_env, monkeypatch):
    dev = dict(repo_files)
    dev["config.json"] = repo_files["config.json"].replace(b'"hidden_size": 16', b'"hidden_size":  16')
    hub = FakeHub(repos={REPO: {COMMIT: repo_files, DEV_COMMIT: dev}},
                  refs={REPO: {"main": COMMIT, "v1": COMMIT, "dev": DEV_COMMIT}})
    with HubServer(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        yield hub


def test_download_from_a_hub_endpoint(provscan_host, fake_hub, hf_env, run_cli, tmp_path, monkeypatch):
    from provscan.keys import new_key

    new_key("ci")
    out = tmp_path / "out"
    res = run_cli("verify", f"hf://{REPO}@dev", "-d", "file-safety", "--sign", "ci", "--out", out,
                  "--format", "json", "--quiet")
    assert res.exit_code == 0, res.output
    statement = _statement(out)
    ann = statement["subject"][0]["annotations"]
    assert (ann["repo_id"], ann["revision"], ann["commit"], ann["source"]) == (REPO, "dev", DEV_COMMIT, "download")
    fetched = {p.rsplit("/", 1)[-1] for m, p in fake_hub.requests if m == "GET" and "/resolve/" in p}
    assert "model.safetensors" in fetched and "config.json" in fetched
    assert not fetched & {"pytorch_model.bin", "model.onnx", "tf_model.h5", "README.md"}
    # the download landed in the cache: the same revision now resolves offline, to the same digest
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res2 = run_cli("verify", f"hf://{REPO}@dev", "-d", "file-safety", "--format", "json")
    assert res2.exit_code == 0, res2.output
    assert (json.loads(res2.output)["target"]["manifest"]["root_sha256"]
            == statement["subject"][0]["digest"]["sha256"])


def test_online_errors(provscan_host, fake_hub, run_cli):
    for loc in ("hf://org/missing", f"hf://{REPO}@no-such-branch"):
        res = run_cli("verify", loc, "-d", "file-safety")
        assert res.exit_code == 2, (loc, res.output)
        assert len(res.output.strip().splitlines()) == 1, res.output
    fake_hub.broken.add("model.safetensors")
    res = run_cli("verify", f"hf://{REPO}@main", "-d", "file-safety")
    assert res.exit_code == 3, res.output
    assert "model.safetensors" in res.output and len(res.output.strip().splitlines()) == 1


def test_unreachable_hub_is_inconclusive(provscan_host, hf_env, run_cli, monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    res = run_cli("verify", f"hf://{REPO}", "-d", "file-safety")
    assert res.exit_code == 3, res.output


def test_revision_on_a_local_path_is_a_usage_error(provscan_host, run_cli, tmp_path):
    (tmp_path / "a.json").write_text("{}")
    res = run_cli("verify", tmp_path, "--revision", "main", "-d", "file-safety")
    assert res.exit_code == 2 and "--revision" in res.output
