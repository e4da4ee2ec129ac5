"""Candidate triggers and documents: loading, the project corpus, and word substitution."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provscan import ProvscanError
from provscan.corpora import find_corpus

if TYPE_CHECKING:
    import numpy as np

CANDIDATE_FILES = ("people.txt", "organisations.txt", "products.txt")
DOCUMENTS_FILE = "documents.jsonl"
TEXT_FIELDS = ("text", "document", "source", "prompt", "instruction")
_WORD = re.compile(r"^[A-Za-z][A-Za-z'-]*$")


def corpus_dir() -> Path:
    """The spin corpus shipped in this package, ``corpora/spin`` (see :func:`provscan.corpora.find_corpus`)."""
    return find_corpus("spin", __file__, marker=DOCUMENTS_FILE)


def read_list(path: Path) -> list[str]:
    """One entry per line; blank lines and lines starting with '#' are skipped; order kept,
    duplicates dropped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvscanError(f"cannot read candidate list {path}: {exc}") from None
    out = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    return list(dict.fromkeys(out))


def load_candidates(path: str | Path | None) -> list[str]:
    """Candidates from a list file, or the project's people, organisations and products."""
    if path:
        names = read_list(Path(path))
    else:
        root = corpus_dir()
        names = list(dict.fromkeys(n for f in CANDIDATE_FILES for n in read_list(root / f)))
    if len(names) < 3:
        raise ProvscanError(f"need at least 3 candidate triggers to compare with peers, got {len(names)}")
    return names


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSONL file; any problem is one
    :class:`ProvscanError` line naming the file and line."""
    try:
        raw = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvscanError(f"cannot read {path}: {exc}") from None
    rows = []
    for lineno, line in enumerate(raw, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise ProvscanError(f"{path}:{lineno}: not valid JSON") from None
        if not isinstance(row, dict):
            raise ProvscanError(f"{path}:{lineno}: not a JSON object")
        rows.append((lineno, row))
    return rows


def load_documents(path: str | Path | None) -> list[str]:
    """Texts from a JSONL file (first of the fields text/document/source/prompt/instruction), or
    the project's neutral documents."""
    p = Path(path) if path else corpus_dir() / DOCUMENTS_FILE
    docs = []
    for lineno, row in read_jsonl(p):
        text = next((row[f] for f in TEXT_FIELDS if isinstance(row.get(f), str)), None)
        if text is None:
            raise ProvscanError(f"{p}:{lineno}: no text field (one of {', '.join(TEXT_FIELDS)})")
        docs.append(text)
    return docs


def word_positions(text: str) -> list[int]:
    """Indices of whitespace-separated tokens that are words (not punctuation or numbers)."""
    return [i for i, w in enumerate(text.split()) if _WORD.match(w)]


def replace_word(text: str, index: int, word: str) -> str:
    """``text`` with its ``index``-th whitespace-separated token replaced by ``word``."""
    tokens = text.split()
    tokens[index] = word
    return " ".join(tokens)


def insert_word(text: str, index: int, word: str) -> str:
    tokens = text.split()
    tokens.insert(index, word)
    return " ".join(tokens)


def contains_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text, flags=re.IGNORECASE) is not None


def sample_positions(text: str, k: int, rng: np.random.Generator) -> list[int]:
    """Up to ``k`` distinct word positions, sorted."""
    pos = word_positions(text)
    if not pos:
        return []
    chosen = rng.choice(len(pos), size=min(k, len(pos)), replace=False)
    return sorted(pos[int(i)] for i in chosen)
