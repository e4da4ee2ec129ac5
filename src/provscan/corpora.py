"""Locating a plugin's probe corpus (``<name>/`` with a checksummed ``manifest.json``).

Each first-party plugin ships its corpus as package data, ``<package>/corpora/<name>/``, so a
wheel installed anywhere finds it. Order: ``$PROVSCAN_CORPORA/<name>`` when set (an override, e.g.
an edited copy); else ``corpora/<name>`` next to ``anchor`` (the calling plugin's ``__file__``:
its package data); else ``corpora/<name>`` in a parent folder of ``anchor`` (a source checkout
that keeps corpora outside its package).
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
    raise ProvscanError(f"the {name} corpus was not found: it ships inside its plugin package "
                        f"(corpora/{name}); reinstall the plugin or set {CORPORA_ENV} to a folder "
                        f"holding {name}/")
