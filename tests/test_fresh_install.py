"""A fresh virtual environment, the README's install line, then ``provscan plugins --json``.

Slow (it installs torch and every dependency into a new venv without system site packages);
it follows new plugins by reading their names from ``plugins/*/pyproject.toml``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from provscan.dev.docgen import first_party_distributions
from provscan.plugins import DEFAULT_PLUGINS

ROOT = Path(__file__).resolve().parent.parent


def readme_install_commands() -> list[str]:
    """The install commands of the README's Quickstart line (before the first ``provscan``)."""
    readme = (ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if "pip install torch" in ln and "install_dev" in ln)
    steps = [s.strip() for s in line.split("&&")]
    install = []
    for step in steps:
        if step.startswith("provscan"):
            break
        install.append(step)
    assert any(re.match(r"pip install torch==\d", s) for s in install), install
    assert "python scripts/install_dev.py" in install, install
    return install


def test_readme_has_the_install_line():
    assert readme_install_commands()[:2] == ["pip install torch==2.13.0",
                                             "python scripts/install_dev.py"]


@pytest.mark.slow
def test_fresh_venv_lists_builtins_and_every_plugin(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bindir = venv / "bin"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PROVSCAN_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               PROVSCAN_QUIET="1")
    for cmd in readme_install_commands():
        res = subprocess.run(cmd, shell=True, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=1800)
        assert res.returncode == 0, f"{cmd}\n{res.stderr[-3000:]}"
    py = bindir / "python"
    check = subprocess.run([str(py), "-c", "import sys; print(sys.prefix != sys.base_prefix)"],
                           env=env, capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "True"
    res = subprocess.run([str(bindir / "provscan"), "plugins", "--json"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["failures"] == []
    builtins = {p["name"] for p in data["plugins"] if p["builtin"]}
    assert builtins == set(DEFAULT_PLUGINS)
    dists = {p["distribution"] for p in data["plugins"] if not p["builtin"]}
    expected = set(first_party_distributions(ROOT))
    assert expected and expected <= dists, f"missing: {sorted(expected - dists)}"
