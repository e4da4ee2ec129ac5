"""docs/plugins/tutorial.md builds as a real distribution that provscan lists, and its tests pass.

The files come from the tutorial's fenced code blocks marked ``file=PATH``. The distribution is
installed with pip into a ``--target`` directory put on ``PYTHONPATH`` of subprocesses, so the
shared virtual environment is never modified.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "plugins" / "tutorial.md"
BLOCK = re.compile(r"^```\w+ file=(\S+)\n(.*?)^```$", re.S | re.M)


def tutorial_files() -> dict[str, str]:
    return {path: body for path, body in BLOCK.findall(TUTORIAL.read_text())}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVSCAN_")}
    return {**env, "PROVSCAN_QUIET": "1", **extra}


def test_tutorial_declares_every_file():
    files = tutorial_files()
    assert set(files) == {
        "provscan-noiseprobe/pyproject.toml",
        "provscan-noiseprobe/src/provscan_noiseprobe/__init__.py",
        "provscan-noiseprobe/src/provscan_noiseprobe/plugin.py",
        "provscan-noiseprobe/tests/conftest.py",
        "provscan-noiseprobe/tests/test_noiseprobe.py",
    }
    layout = TUTORIAL.read_text().split("```text", 1)[1].split("```", 1)[0]
    for path in files:
        assert Path(path).name in layout, f"{path} missing from the layout block"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    src = tmp_path_factory.mktemp("tutorial-src")
    for rel, body in tutorial_files().items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(body)
    target = tmp_path_factory.mktemp("tutorial-site")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
           "--no-index", "--target", str(target), str(src / "provscan-noiseprobe")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=clean_env())
    assert res.returncode == 0, res.stderr
    return src / "provscan-noiseprobe", target


def test_provscan_plugins_lists_the_tutorial_plugin(installed):
    _, site = installed
    res = subprocess.run([sys.executable, "-m", "provscan", "plugins", "--json"],
                         capture_output=True, text=True, timeout=300,
                         env=clean_env(PYTHONPATH=str(site)))
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    (plugin,) = [p for p in data["plugins"] if p["name"] == "noiseprobe"]
    assert plugin["distribution"] == "provscan-noiseprobe" and plugin["version"] == "0.1.0"
    assert plugin["detectors"] == ["noiseprobe"] and plugin["hooks"] == ["register_detectors"]
    assert not plugin["builtin"]
    assert "noiseprobe" not in {f["name"] for f in data["failures"]}


def test_tutorial_plugin_tests_pass(installed):
    project, site = installed
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(project / "tests")], capture_output=True, text=True, timeout=300,
                         cwd=project, env=clean_env(PYTHONPATH=str(site)))
    assert res.returncode == 0, res.stdout[-3000:]
    assert "4 passed" in res.stdout
