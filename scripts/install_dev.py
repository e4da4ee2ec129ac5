"""Install provscan and every first-party plugin (plugins/*/) in editable mode.

torch must already be installed (``pip install torch==2.13.0``), so that pip does not pull a
CUDA build. Used by tox, .ci/run and the README.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
plugins = sorted(p.parent for p in (root / "plugins").glob("*/pyproject.toml"))
args = [sys.executable, "-m", "pip", "install", "-q", "-e", f"{root}[test]"]
for p in plugins:
    args += ["-e", str(p)]
sys.exit(subprocess.call(args + sys.argv[1:]))
