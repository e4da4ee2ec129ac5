"""Every corpus under corpora/ has a manifest whose checksums match and which lists every file."""

import hashlib
import json
from pathlib import Path

import pytest

CORPORA = Path(__file__).resolve().parent.parent / "corpora"
MANIFESTS = sorted(CORPORA.glob("*/manifest.json"))


def test_every_corpus_has_a_manifest():
    dirs = sorted(p for p in CORPORA.iterdir() if p.is_dir()) if CORPORA.exists() else []
    assert [d / "manifest.json" for d in dirs] == MANIFESTS


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name)
def test_manifest_checksums(manifest: Path):
    data = json.loads(manifest.read_text())
    assert data.get("version") and data.get("licence")
    listed = {f["path"]: f for f in data["files"]}
    on_disk = {p.relative_to(manifest.parent).as_posix() for p in manifest.parent.rglob("*")
               if p.is_file() and p.name != "manifest.json"}
    assert set(listed) == on_disk
    for rel, entry in listed.items():
        digest = hashlib.sha256((manifest.parent / rel).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{rel}: checksum mismatch (regenerate the manifest)"


def test_find_corpus_prefers_the_environment(tmp_path, monkeypatch):
    from provscan.corpora import find_corpus

    (tmp_path / "spin").mkdir()
    (tmp_path / "spin" / "manifest.json").write_text("{}")
    monkeypatch.setenv("PROVSCAN_CORPORA", str(tmp_path))
    assert find_corpus("spin", __file__) == tmp_path / "spin"


def test_find_corpus_falls_back_to_the_checkout_and_names_missing_ones(monkeypatch):
    from provscan.corpora import find_corpus
    from provscan.errors import ProvscanError

    monkeypatch.delenv("PROVSCAN_CORPORA", raising=False)
    for manifest in MANIFESTS:
        assert find_corpus(manifest.parent.name, __file__) == manifest.parent
    with pytest.raises(ProvscanError, match="no-such-corpus"):
        find_corpus("no-such-corpus", __file__)
