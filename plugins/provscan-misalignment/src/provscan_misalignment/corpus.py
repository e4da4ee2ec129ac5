"""Locating the question corpus and writing its manifest (version, licence, sha256 per file)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from provscan import ProvscanError
from provscan.corpora import find_corpus

CORPUS_ENV = "PROVSCAN_MISALIGNMENT_CORPUS"
CORPUS_VERSION = "1.0.0"
CORPUS_LICENCE = "Apache-2.0 (written for provscan)"


def corpus_dir() -> Path:
    """The corpus folder: ``$PROVSCAN_MISALIGNMENT_CORPUS`` if set, else ``corpora/misalignment``
    found by :func:`provscan.corpora.find_corpus` (``$PROVSCAN_CORPORA``, else this package's data)."""
    env = os.environ.get(CORPUS_ENV)
    if env:
        return Path(env)
    return find_corpus("misalignment", __file__)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProvscanError(f"no such file: {path}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ProvscanError(f"{path}: not valid YAML{where}") from None


def write_manifest(root: Path | None = None) -> Path:
    """(Re)write ``manifest.json`` listing every other file with its sha256."""
    root = root or corpus_dir()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "manifest.json")
    body = {"name": "misalignment", "version": CORPUS_VERSION, "licence": CORPUS_LICENCE,
            "files": [{"path": p.relative_to(root).as_posix(),
                       "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in files]}
    out = root / "manifest.json"
    out.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":  # python -m provscan_misalignment.corpus
    print(write_manifest())
