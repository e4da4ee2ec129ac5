"""Install provscan with every extra it declares (models, test, ray, ...) and every first-party
plugin (plugins/*/) in editable mode: the full development and test set-up.

torch must already be installed (``pip install torch==2.13.0``), so that pip does not pull a
CUDA build. Used by tox, .ci/run and the README. (A light install is ``pip install provscan``:
no torch; see docs/usage.md.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def declared_extras(pyproject: str) -> list[str]:
    """Names in ``[project.optional-dependencies]`` (read without tomllib, for Python 3.10)."""
    section = pyproject.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return sorted(re.findall(r"^([A-Za-z0-9_.-]+)\s*=", section, re.M))


root = Path(__file__).resolve().parent.parent
extras = declared_extras((root / "pyproject.toml").read_text())
plugins = sorted(p.parent for p in (root / "plugins").glob("*/pyproject.toml"))
args = [sys.executable, "-m", "pip", "install", "-q", "-e", f"{root}[{','.join(extras)}]"]
for p in plugins:
    args += ["-e", str(p)]
sys.exit(subprocess.call(args + sys.argv[1:]))
