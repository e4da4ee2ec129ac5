"""Locating the project's probe corpora (``corpora/<name>/`` with a checksummed manifest).

Order: ``$PROVSCAN_CORPORA/<name>`` when set; else ``corpora/<name>`` in a parent folder of the
calling plugin's source file (a source checkout or an editable install). Wheels do not carry the
corpora: set ``PROVSCAN_CORPORA`` to a copy of the repository's ``corpora/`` folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from provscan.errors import ProvscanError

CORPORA_ENV = "PROVSCAN_CORPORA"


def find_corpus(name: str, anchor: str | Path, marker: str = "manifest.json") -> Path:
    """The folder of corpus ``name`` that contains ``marker``; ``anchor`` is usually ``__file__``."""
    candidates = []
    env = os.environ.get(CORPORA_ENV)
    if env:
        candidates.append(Path(env) / name)
    candidates += [p / "corpora" / name for p in Path(anchor).resolve().parents]
    for c in candidates:
        if (c / marker).is_file():
            return c
    raise ProvscanError(f"the {name} corpus (corpora/{name}) was not found: set {CORPORA_ENV} "
                        "to a copy of the repository's corpora/ folder")
