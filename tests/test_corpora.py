"""Every plugin corpus (package data, ``plugins/*/src/<package>/corpora/<name>/``) has a manifest
whose checksums match and which lists every file; find_corpus prefers PROVSCAN_CORPORA, then the
package data."""

import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPORA = sorted(ROOT.glob("plugins/*/src/*/corpora"))
MANIFESTS = sorted(m for c in CORPORA for m in c.glob("*/manifest.json"))


def test_every_corpus_has_a_manifest():
    assert {c.parent.name for c in CORPORA} == {"provscan_spin", "provscan_misalignment"}
    dirs = sorted(p for c in CORPORA for p in c.iterdir() if p.is_dir())
    assert [d / "manifest.json" for d in dirs] == MANIFESTS


@pytest.mark.parametrize("package", ["provscan_spin", "provscan_misalignment"])
def test_the_corpus_is_declared_as_package_data(package):
    import tomllib

    pyproject = next(ROOT.glob(f"plugins/*/src/{package}")).parent.parent / "pyproject.toml"
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"][package]
    base = next(ROOT.glob(f"plugins/*/src/{package}"))
    declared = {p for pat in patterns for p in base.glob(pat) if p.is_file()}
    assert declared == {p for p in (base / "corpora").rglob("*") if p.is_file()}


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


def test_find_corpus_finds_the_package_data_and_names_missing_ones(monkeypatch):
    from provscan.corpora import find_corpus
    from provscan.errors import ProvscanError

    monkeypatch.delenv("PROVSCAN_CORPORA", raising=False)
    for manifest in MANIFESTS:
        plugin_module = manifest.parent.parent.parent / "plugin.py"
        assert find_corpus(manifest.parent.name, plugin_module) == manifest.parent
    with pytest.raises(ProvscanError, match="no-such-corpus"):
        find_corpus("no-such-corpus", __file__)
