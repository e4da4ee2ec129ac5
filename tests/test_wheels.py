"""Built wheels, installed outside the checkout.

- **Light install**: the core wheel alone in a fresh venv without system site packages (its
  dependencies from the package index, no torch): ``inspect``, ``digest``, ``keys``, ``verify``
  (file safety) with a signature, ``cert verify/show`` and ``policy check`` work on a real
  safetensors checkpoint; a model detector of a plugin installed without its dependencies says in
  one line (exit 2) that the ``models`` extra is missing.
- **Plugin wheels carry their corpora**: every file of the spin and misalignment manifests is in
  the built wheel. (Running spin and misalignment scans from installed wheels in another
  directory is not automated yet.)

Both are slow (wheel builds and a venv with the core's dependencies from the index).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))
MODEL_LIBRARIES = ("torch", "transformers", "tokenizers", "scipy", "sklearn")

pytestmark = pytest.mark.slow


def clean_env(venv: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PROVSCAN_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               PROVSCAN_HOME=str(home), PROVSCAN_QUIET="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def write_safetensors(path: Path) -> None:
    """A real safetensors file (two float32 tensors), written byte by byte."""
    a, b = struct.pack("<6f", *range(6)), struct.pack("<3f", 0.5, 1.5, 2.5)
    header = json.dumps({"__metadata__": {"format": "pt"},
                         "dense.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, len(a)]},
                         "dense.bias": {"dtype": "F32", "shape": [3], "data_offsets": [len(a), len(a) + len(b)]}},
                        separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + a + b)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    """Wheels of provscan and every first-party plugin, built from this checkout."""
    out = tmp_path_factory.mktemp("wheels")
    sources = tmp_path_factory.mktemp("sources")
    skip = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", "tests")
    for src in [ROOT, *PLUGINS]:
        # build from a copy: pip builds in the source tree (build/, *.egg-info)
        copy = sources / src.name
        copy.mkdir()
        for item in ("pyproject.toml", "README.md", "src"):
            if (src / item).is_dir():
                shutil.copytree(src / item, copy / item, ignore=skip)
            elif (src / item).exists():
                shutil.copy2(src / item, copy / item)
        res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(copy)],
                             capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
    found = {p.name.split("-")[0].replace("_", "-"): p for p in out.glob("*.whl")}
    assert set(found) == {"provscan", *(p.name for p in PLUGINS)}, sorted(found)
    return found


def test_plugin_wheels_carry_their_corpora(wheels):
    for dist, package, corpus in (("provscan-spin", "provscan_spin", "spin"),
                                  ("provscan-misalignment", "provscan_misalignment", "misalignment")):
        names = set(zipfile.ZipFile(wheels[dist]).namelist())
        manifest = json.loads(zipfile.ZipFile(wheels[dist]).read(f"{package}/corpora/{corpus}/manifest.json"))
        for entry in manifest["files"]:
            assert f"{package}/corpora/{corpus}/{entry['path']}" in names


def test_core_wheel_alone_runs_the_light_commands_without_torch(wheels, tmp_path):
    venv, home, work = tmp_path / "venv", tmp_path / "home", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = clean_env(venv, home)
    py, provscan = venv / "bin" / "python", venv / "bin" / "provscan"
    res = run([py, "-m", "pip", "install", "-q", wheels["provscan"]], env, work)
    assert res.returncode == 0, res.stderr[-3000:]
    res = run([py, "-c", "import sys; print(sys.prefix != sys.base_prefix)"], env, work)
    assert res.stdout.strip() == "True"
    for name in MODEL_LIBRARIES:  # the core pulled none of them
        res = run([py, "-c", f"import {name}"], env, work)
        assert res.returncode != 0, f"{name} is importable in the light install"

    model = work / "model"
    model.mkdir()
    write_safetensors(model / "model.safetensors")
    (model / "config.json").write_text(json.dumps({"model_type": "gpt2"}))  # a loader would need transformers
    out = work / "out"
    steps = [
        (["keys", "new", "ci", "--no-passphrase"], 0),
        (["inspect", model], 0),
        (["inspect", model, "--json"], 0),
        (["digest", model, "--json"], 0),
        (["policy", "check", "builtin:fail-closed"], 0),
        (["verify", model, "--sign", "ci", "--out", out, "--format", "json", "--quiet"], 0),
        (["cert", "show", out / "certificate.intoto.json"], 0),
        (["cert", "verify", out / "certificate.intoto.json", "--pubkey", "ci", "--checkpoint", model], 0),
    ]
    for args, expected in steps:
        res = run([provscan, *args], env, work)
        assert res.returncode == expected, (args, res.stdout[-1000:], res.stderr[-2000:])
    report = json.loads((out / "report.json").read_text())
    assert [e["detector"] for e in report["evidence"]] == ["file-safety"]
    # the certificate verification really checks the bytes: change one and it fails
    data = bytearray((model / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (model / "model.safetensors").write_bytes(bytes(data))
    res = run([provscan, "cert", "verify", out / "certificate.intoto.json", "--pubkey", "ci",
               "--checkpoint", model], env, work)
    assert res.returncode == 1, res.stderr

    # a model plugin installed without its dependencies: listed, and its detector names the extra
    res = run([py, "-m", "pip", "install", "-q", "--no-deps", wheels["provscan-backdoor"]], env, work)
    assert res.returncode == 0, res.stderr[-3000:]
    res = run([provscan, "plugins", "--json"], env, work)
    assert res.returncode == 0 and json.loads(res.stdout)["failures"] == [], res.stderr
    clf = work / "clf"
    clf.mkdir()
    write_safetensors(clf / "model.safetensors")
    (clf / "provscan_model.json").write_text(json.dumps(
        {"format": "provscan-classifier", "version": 1, "factory": "small-cnn", "config": {},
         "num_classes": 10, "input_shape": [1, 8, 8]}))
    res = run([provscan, "verify", clf, "--detector", "backdoor.max-margin", "--quiet"], env, work)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert "provscan[models]" in lines[0] and "backdoor.max-margin" in lines[0]
