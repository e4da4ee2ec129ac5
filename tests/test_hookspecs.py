"""Every hook in provscan.hookspecs is called through a registered test plugin.

``test_every_hook_has_a_test`` fails when a hook is added without a ``test_hook_<name>`` here.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import provscan
from provscan import hookspecs
from provscan.architectures import small_cnn
from provscan.checkpoint import open_checkpoint
from provscan.classifier_card import MODEL_CARD, save_classifier
from provscan.detectors import Detector, Injector
from provscan.errors import ProvscanError
from provscan.evidence import Claim, Evidence
from provscan.params import Param
from provscan.policy import Policy
from provscan.scan import Scan, run_scan
from provscan.targets.base import ClassifierTarget, OpenOptions, ResolvedLocation


def hook_names() -> list[str]:
    return [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(f, "provscan_spec")]


def test_every_hook_has_a_test():
    here = sys.modules[__name__]
    missing = [n for n in hook_names() if not hasattr(here, f"test_hook_{n}")]
    assert not missing, f"hooks without a test_hook_<name> in {__file__}: {missing}"
    assert len(hook_names()) >= 10


def test_firstresult_hooks():
    first = {n for n in hook_names() if getattr(hookspecs, n).provscan_spec.get("firstresult")}
    assert first == {"open_target", "resolve_location"}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_classifier(small_cnn(), tmp_path / "cnn", "small-cnn", {}, 10, (1, 8, 8))


class Echo(Detector):
    id = "hooktest.echo"
    description = "returns one inconclusive claim naming the target kind"
    applies_to = ("classifier",)
    params = (Param("note", str, "x", "free text"),)

    def run(self, target: Any, params: dict[str, Any], rng: Any) -> Evidence:
        claim = Claim("echo", "nothing", "none", None, None, 0.05, 0, summary=params["note"])
        return Evidence(self.id, self.version, self.plugin, target.kind, [claim], primary="echo")


def test_hook_register_detectors(register_plugin, run_cli, model_dir):
    class P:
        @provscan.hookimpl
        def register_detectors(self):
            return [Echo]

    register_plugin(P())
    res = run_cli("verify", model_dir, "-d", "hooktest.echo", "-p", "hooktest.echo.note=hi-there")
    assert "hooktest.echo" in res.output and "hi-there" in res.output, res.output
    assert Echo.plugin == "test-plugin"


def test_hook_register_injectors(register_plugin, run_cli, tmp_path):
    class Copy(Injector):
        id = "hooktest-copy"
        description = "copies the data and writes an empty secret"
        params = (Param("rate", float, 0.1, "unused rate"),)

        def apply(self, data, out, secret, params, rng):
            out.write_bytes(data.read_bytes())
            secret.write_text(json.dumps({"rate": params["rate"]}))
            return {"rate": params["rate"]}

    class P:
        @provscan.hookimpl
        def register_injectors(self):
            return [Copy]

    register_plugin(P())
    res = run_cli("inject", "--help")
    assert "hooktest-copy" in res.output
    res = run_cli("inject", "hooktest-copy", "--help")
    assert res.exit_code == 0 and "--rate" in res.output


def test_hook_register_model_factories(register_plugin, run_cli, tmp_path):
    calls = []

    def tiny(num_classes: int = 3) -> torch.nn.Module:
        calls.append(num_classes)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, num_classes))

    class P:
        @provscan.hookimpl
        def register_model_factories(self):
            return {"hooktest-tiny": tiny}

    register_plugin(P())
    path = save_classifier(tiny(), tmp_path / "tiny", "hooktest-tiny", {"num_classes": 3}, 3,
                           (1, 2, 2))
    assert json.loads((path / MODEL_CARD).read_text())["factory"] == "hooktest-tiny"
    res = run_cli("verify", path)
    assert res.exit_code == 0, res.output
    # once to save; when the checkpoint is opened, once on the meta device (declared size) and once for real
    assert calls == [3, 3, 3]


def test_hook_open_target(register_plugin, provscan_host, model_dir):
    seen = []

    class P:
        @provscan.hookimpl
        def open_target(self, location, options):
            seen.append(location)
            if not location.startswith("hooktest://"):
                return None
            module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
            return ClassifierTarget(module, 2, (1, 2, 2), location=location, format="test")

    register_plugin(P())
    target = provscan_host.hook.open_target(location="hooktest://model", options=OpenOptions(),
                                            host=provscan_host)
    assert target.kind == "classifier" and target.format == "test"
    # a later-registered opener is asked before the built-in (trylast) ones; None falls through
    target = provscan_host.hook.open_target(location=str(model_dir), options=OpenOptions(),
                                            host=provscan_host)
    assert target.format == "provscan-classifier" and seen[-1] == str(model_dir)
    # through the one open path the host reaches the opener and the target
    opened = open_checkpoint(provscan_host, "hooktest://model")
    assert opened.target.host is provscan_host and opened.manifest is None


def test_hook_resolve_location(register_plugin, provscan_host, model_dir, tmp_path):
    cleaned = []

    class Resolver:
        @provscan.hookimpl
        def resolve_location(self, location, options):
            if not location.startswith("hooktest-registry:/"):
                return None
            return ResolvedLocation(model_dir, {"type": "hooktest", "version": "7"},
                                    lambda: cleaned.append(location))

    register_plugin(Resolver())
    with open_checkpoint(provscan_host, "hooktest-registry:/cnn/7") as opened:
        assert opened.path == model_dir and opened.identity == {"type": "hooktest", "version": "7"}
        assert opened.target is not None and opened.target.kind == "classifier"
        assert opened.manifest.root_sha256 == open_checkpoint(provscan_host, model_dir).manifest.root_sha256
    assert cleaned == ["hooktest-registry:/cnn/7"]
    with pytest.raises(ProvscanError, match="no such file"):
        open_checkpoint(provscan_host, str(tmp_path / "missing"))


def test_hook_register_reporters(register_plugin, run_cli, model_dir, tmp_path):
    class Upper:
        name = "hooktest-upper"
        suffix = ".up"

        def render(self, result):
            return f"VERDICT={result.verdict.status.upper()}\n".encode()

    class P:
        @provscan.hookimpl
        def register_reporters(self):
            return [Upper]

    register_plugin(P())
    res = run_cli("verify", model_dir, "--format", "hooktest-upper", "--out", tmp_path / "rep")
    assert res.exit_code == 0, res.output
    (written,) = (tmp_path / "rep").iterdir()
    assert written.suffix == ".up" and written.read_text().startswith("VERDICT=")


def test_hook_register_judges(register_plugin, provscan_host):
    class Judge:
        name = "hooktest-judge"

    class P:
        @provscan.hookimpl
        def register_judges(self):
            return [Judge]

    register_plugin(P())
    assert provscan_host.judges()["hooktest-judge"] is Judge


def test_hook_register_scorers(register_plugin, provscan_host):
    class Length:
        name = "hooktest-length"

        def score(self, texts):
            return [float(len(t)) for t in texts]

    class P:
        @provscan.hookimpl
        def register_scorers(self):
            return [Length]

    register_plugin(P())
    assert provscan_host.scorers()["hooktest-length"]().score(["ab", ""]) == [2.0, 0.0]


def test_hook_register_commands(register_plugin, run_cli):
    import click

    class P:
        @provscan.hookimpl
        def register_commands(self, cli):
            @cli.command("hooktest-hello")
            @click.argument("who")
            def hello(who):
                """Say hello."""
                click.echo(f"hello {who}")

    register_plugin(P())
    res = run_cli("hooktest-hello", "world")
    assert res.exit_code == 0 and res.output == "hello world\n"
    assert "hooktest-hello" in run_cli("--help").output


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    @provscan.hookimpl
    def scan_started(self, scan):
        self.events.append(("started", scan.target.kind, len(scan.manifest.files)))

    @provscan.hookimpl
    def scan_finished(self, scan, result):
        self.events.append(("finished", [e.detector for e in result.evidence], result.exit_code))


def test_hook_scan_started(register_plugin, provscan_host, model_dir):
    rec = Recorder()
    register_plugin(rec)
    run_scan(provscan_host, Scan(str(model_dir), [], {}, 0, OpenOptions(), Policy()))
    assert rec.events[0] == ("started", "classifier", 2)


def test_hook_scan_finished(register_plugin, provscan_host, model_dir):
    rec = Recorder()
    register_plugin(rec)
    result = run_scan(provscan_host, Scan(str(model_dir), [], {}, 0, OpenOptions(), Policy()))
    assert rec.events[-1] == ("finished", ["file-safety"], result.exit_code)
    assert [e[0] for e in rec.events] == ["started", "finished"]
