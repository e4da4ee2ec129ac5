"""The light commands import no model libraries.

Each command runs in a fresh interpreter (every installed plugin loads, as for a user) through a
tiny wrapper that records ``sys.modules`` when the command exits; torch, transformers, tokenizers,
scipy and scikit-learn must be absent (and numpy too for ``--help`` and ``plugins``).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "tokenizers", "scipy", "sklearn")

WRAPPER = """
import json, sys
{prelude}
sys.argv = ["provscan", *json.loads(sys.argv[1])]
code = 0
try:
    from provscan.cli import main
    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
roots = sorted({{name.split(".")[0] for name in sys.modules}})
with open({out!r}, "w") as fh:
    json.dump({{"code": code, "modules": roots}}, fh)
"""


def write_safetensors(path: Path) -> None:
    """A real one-tensor safetensors file, written byte by byte (no numpy, no torch)."""
    data = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)
    header = json.dumps({"weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, len(data)]}},
                        separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


def run_light(tmp: Path, *args: str, env: dict[str, str], prelude: str = "") -> tuple[int, set[str], str]:
    """Run ``provscan ARGS`` in a fresh interpreter; (exit code, top-level modules, stderr)."""
    out = tmp / "modules.json"
    out.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-c", WRAPPER.format(out=str(out), prelude=prelude), json.dumps(list(args))],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert out.is_file(), proc.stderr[-2000:]
    record = json.loads(out.read_text())
    return record["code"], set(record["modules"]), proc.stderr


@pytest.fixture(scope="module")
def light_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("light")
    model = tmp / "model"
    model.mkdir()
    write_safetensors(model / "model.safetensors")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVSCAN_")}
    env.update(PROVSCAN_HOME=str(tmp / "home"), PROVSCAN_QUIET="1", PYTHONHASHSEED="0")
    return tmp, model, env


def test_help_and_plugins_import_no_model_library_nor_numpy(light_env):
    tmp, _, env = light_env
    for args in (["--help"], ["plugins"], ["plugins", "--json"]):
        code, modules, err = run_light(tmp, *args, env=env)
        assert code == 0, (args, err)
        assert not modules & {*HEAVY, "numpy"}, (args, sorted(modules & {*HEAVY, "numpy"}))


def test_light_commands_import_no_model_library(light_env):
    tmp, model, env = light_env
    cert = tmp / "out" / "certificate.intoto.json"
    runs = [
        ["keys", "new", "ci", "--no-passphrase"],
        ["keys", "list"],
        ["inspect", str(model)],
        ["inspect", str(model), "--json"],
        ["digest", str(model)],
        ["policy", "list"],
        ["policy", "check", "builtin:fail-closed"],
        ["verify", str(model), "--sign", "ci", "--out", str(tmp / "out"), "--quiet"],
        ["cert", "show", str(cert)],
        ["cert", "verify", str(cert), "--pubkey", "ci", "--checkpoint", str(model)],
    ]
    for args in runs:
        code, modules, err = run_light(tmp, *args, env=env)
        assert code == 0, (args, err)
        assert not modules & set(HEAVY), (args, sorted(modules & set(HEAVY)))


def test_the_check_can_fail(light_env):
    """The recorded modules are the process's own: a heavy import before the command shows."""
    tmp, _, env = light_env
    code, modules, err = run_light(tmp, "--version", env=env, prelude="import scipy.stats")
    assert code == 0, err
    assert "scipy" in modules and "numpy" in modules


BLOCK_MODELS_EXTRA = ("import sys\n"
                      "for _m in ('torch', 'transformers', 'tokenizers', 'scipy', 'sklearn', 'PIL'):\n"
                      "    sys.modules[_m] = None  # import raises ModuleNotFoundError, as without the extra")


def test_without_the_models_extra_file_safety_runs_and_model_detectors_say_what_is_missing(light_env):
    """torch & co. made unimportable in the child: file-safety verify still passes on a checkpoint
    whose loader needs transformers, and a detector that needs the model exits 2 in one line."""
    tmp, _, env = light_env
    hf = tmp / "hf"
    hf.mkdir()
    write_safetensors(hf / "model.safetensors")
    (hf / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    code, modules, err = run_light(tmp, "verify", str(hf), "--quiet", env=env, prelude=BLOCK_MODELS_EXTRA)
    assert code == 0, err
    clf = tmp / "clf"
    clf.mkdir()
    write_safetensors(clf / "model.safetensors")
    (clf / "provscan_model.json").write_text(json.dumps(
        {"format": "provscan-classifier", "version": 1, "factory": "small-cnn", "config": {},
         "num_classes": 10, "input_shape": [1, 8, 8]}))
    code, _, err = run_light(tmp, "verify", str(clf), "--detector", "backdoor.max-margin", "--quiet",
                             env=env, prelude=BLOCK_MODELS_EXTRA)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "backdoor.max-margin" in lines[0] and "provscan[models]" in lines[0], err
