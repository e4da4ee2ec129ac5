"""The ``provscan.testing`` pytest plugin, run inside an inner pytest session (pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INNER = '''
import provscan
from provscan import plugins
from provscan.detectors import Detector

SEEN = {}


class Hello(Detector):
    id = "inner.hello"


class Plugin:
    @provscan.hookimpl
    def register_detectors(self):
        return [Hello]

    @provscan.hookimpl
    def register_commands(self, cli):
        @cli.command("inner-hello")
        def hello():
            print("hello from the inner plugin")


def test_register_then_fail(provscan_host, register_plugin, run_cli):
    SEEN["host"] = provscan_host
    assert plugins.get_host() is provscan_host
    assert register_plugin(Plugin(), name="inner") == "inner"
    assert "inner.hello" in provscan_host.detectors()
    res = run_cli("inner-hello")
    assert res.exit_code == 0 and "hello from the inner plugin" in res.output
    assert False, "fail on purpose: the plugin must still be unregistered"


def test_unregistered_after_failure(provscan_host, run_cli):
    old = SEEN["host"]
    assert not old.pm.has_plugin("inner")
    assert "inner.hello" not in old.detectors()
    assert provscan_host is not old and "inner.hello" not in provscan_host.detectors()
    res = run_cli("inner-hello")  # the command did not leak into the global group
    assert res.exit_code == 2


def test_shared_artifact(shared_artifact, tmp_path):
    calls = []

    def build(path):
        calls.append(path)
        path.mkdir()
        (path / "x").write_text("built")

    a = shared_artifact("inner-art", build)
    b = shared_artifact("inner-art", build)
    assert a == b and len(calls) == 1 and (a / "x").read_text() == "built"

    def broken(path):
        path.mkdir()
        raise RuntimeError("half-built")

    try:
        shared_artifact("inner-broken", broken)
    except RuntimeError:
        pass
    assert not (a.parent / "inner-broken").exists()
    assert shared_artifact("inner-broken", build).exists()  # retried
    try:
        shared_artifact("../escape", build)
    except ValueError:
        pass
    else:
        raise AssertionError("a key with a path separator must be refused")


def test_run_cli_errors_are_results(run_cli, tmp_path):
    res = run_cli("digest", tmp_path / "missing")
    assert res.exit_code == 2 and "no such file" in res.stderr
'''


def test_fixtures_in_an_inner_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: fail on purpose*"])
