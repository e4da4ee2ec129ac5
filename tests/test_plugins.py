"""The plugin host: entry-point loading with isolation, env selection, validation, tracing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

import provscan
from provscan.detectors import Detector, Injector
from provscan.errors import PluginError
from provscan.plugins import DEFAULT_PLUGINS, new_host, normalize_name

ENV = ("PROVSCAN_LOAD_PLUGINS", "PROVSCAN_DISABLE_PLUGINS", "PROVSCAN_STRICT_PLUGINS",
       "PROVSCAN_TRACE_PLUGINS")

GOOD = """
import provscan
from provscan.detectors import Detector

class Good(Detector):
    id = "{det_id}"
    description = "test detector"

@provscan.hookimpl
def register_detectors():
    return [Good]
"""


@pytest.fixture
def fake_dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """``make(dist, modules={mod: source}, entry_points={ep: target}, version)`` installs a
    distribution into a directory on ``sys.path`` (a real ``.dist-info``, found by
    importlib.metadata), isolated from the ``PROVSCAN_*`` variables of the caller."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    created: list[str] = []

    def make(dist: str, modules: dict[str, str], entry_points: dict[str, str],
             version: str = "1.2.3") -> str:
        for mod, source in modules.items():
            (site / f"{mod}.py").write_text(textwrap.dedent(source))
            created.append(mod)
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        eps = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[provscan]\n{eps}")
        return dist

    yield make
    for mod in created:
        sys.modules.pop(mod, None)


def uid() -> str:
    return uuid.uuid4().hex[:8]


def two_plugins(fake_dists: Callable[..., str]) -> tuple[str, str, str]:
    """A distribution whose import raises and a good one; returns (bad ep, good ep, good det id)."""
    u = uid()
    bad, good, det = f"bad{u}", f"good{u}", f"test.good-{u}"
    fake_dists(f"provscan-bad-{u}", {f"pbad_{u}": "raise RuntimeError('boom at import')"},
               {bad: f"pbad_{u}"})
    fake_dists(f"provscan-good-{u}", {f"pgood_{u}": GOOD.format(det_id=det)},
               {good: f"pgood_{u}"})
    return bad, good, det


def test_import_failure_is_isolated_and_named(fake_dists, monkeypatch):
    bad, good, det = two_plugins(fake_dists)
    monkeypatch.setenv("PROVSCAN_LOAD_PLUGINS", f"{bad},{good}")
    host = new_host(load_entry_points=True)
    assert det in host.detectors()
    assert host.detectors()[det].plugin == f"provscan-good-{good[4:]}"
    (failure,) = host.failures
    assert failure.name == bad
    assert failure.distribution == f"provscan-bad-{bad[3:]}" and failure.version == "1.2.3"
    assert failure.error == "RuntimeError: boom at import"
    assert not host.pm.has_plugin(bad)


def test_strict_mode_raises_naming_the_plugin(fake_dists, monkeypatch):
    bad, good, _ = two_plugins(fake_dists)
    monkeypatch.setenv("PROVSCAN_LOAD_PLUGINS", f"{bad},{good}")
    monkeypatch.setenv("PROVSCAN_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=rf"plugin {bad} \(provscan-bad-\w+ 1.2.3\).*boom"):
        new_host(load_entry_points=True)


def test_cli_reports_failure_and_strict_exits_2(fake_dists, tmp_path):
    bad, good, det = two_plugins(fake_dists)
    env = {**{k: v for k, v in os.environ.items() if k not in ENV},
           "PYTHONPATH": str(tmp_path / "site"), "PROVSCAN_LOAD_PLUGINS": f"{bad},{good}"}
    cmd = [sys.executable, "-m", "provscan", "plugins", "--json"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert [f["name"] for f in data["failures"]] == [bad]
    assert any(det in p["detectors"] for p in data["plugins"])
    res = subprocess.run(cmd, env={**env, "PROVSCAN_STRICT_PLUGINS": "1"}, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and bad in res.stderr and "boom" in res.stderr
    assert res.stdout == ""


def test_load_and_disable_select(fake_dists, monkeypatch):
    bad, good, det = two_plugins(fake_dists)
    monkeypatch.setenv("PROVSCAN_LOAD_PLUGINS", good)
    host = new_host(load_entry_points=True)
    assert host.failures == [] and det in host.detectors() and not host.pm.has_plugin(bad)
    # distribution names match too, normalised like pip (underscores, case)
    monkeypatch.setenv("PROVSCAN_LOAD_PLUGINS", f"Provscan_Good_{good[4:]}, {bad}")
    monkeypatch.setenv("PROVSCAN_DISABLE_PLUGINS", f"provscan.bad.{bad[3:]}")
    host = new_host(load_entry_points=True)
    assert host.failures == [] and host.pm.has_plugin(good) and not host.pm.has_plugin(bad)
    # an empty selection loads nothing; built-ins are always there
    monkeypatch.setenv("PROVSCAN_LOAD_PLUGINS", "")
    monkeypatch.delenv("PROVSCAN_DISABLE_PLUGINS")
    host = new_host(load_entry_points=True)
    assert sorted(name for name, _ in host.pm.list_name_plugin()) == sorted(DEFAULT_PLUGINS)


def test_unknown_name_in_load_selection_is_reported(fake_dists, monkeypatch):
    monkeypatch.setenv("PROVSCAN_LOAD_PLUGINS", "no-such-plugin-xyz")
    host = new_host(load_entry_points=True)
    assert [f.name for f in host.failures] == ["no-such-plugin-xyz"]
    monkeypatch.setenv("PROVSCAN_STRICT_PLUGINS", "yes")
    with pytest.raises(PluginError, match="no-such-plugin-xyz"):
        new_host(load_entry_points=True)


def test_misspelled_hookimpl_fails_loudly():
    class Typo:
        @provscan.hookimpl
        def register_detector(self):  # missing "s"
            return []

    host = new_host()
    with pytest.raises(PluginError, match="typo-plugin.*register_detector"):
        host.register(Typo(), name="typo-plugin")
    assert not host.pm.has_plugin("typo-plugin")
    host.register(type("Fine", (), {})(), name="after-typo")  # nothing pending is left


def test_hookimpl_with_unknown_argument_fails():
    class BadArgs:
        @provscan.hookimpl
        def open_target(self, location, options, extra):
            return None

    with pytest.raises(PluginError, match="bad-args"):
        new_host().register(BadArgs(), name="bad-args")


def test_misspelled_hookimpl_in_entry_point_is_a_named_failure(fake_dists, monkeypatch):
    u = uid()
    src = "import provscan\n@provscan.hookimpl\ndef register_detecters():\n    return []\n"
    fake_dists(f"provscan-typo-{u}", {f"ptypo_{u}": src}, {f"typo{u}": f"ptypo_{u}"})
    monkeypatch.setenv("PROVSCAN_LOAD_PLUGINS", f"typo{u}")
    (failure,) = new_host(load_entry_points=True).failures
    assert failure.name == f"typo{u}" and "register_detecters" in failure.error


def _det(det_id: str) -> type[Detector]:
    return type(f"D{uuid.uuid4().hex[:6]}", (Detector,), {"id": det_id})


def _plugin(**hooks: object) -> object:
    """A plugin object whose hooks return the given values."""
    ns = {name: provscan.hookimpl(lambda value=value: value) for name, value in hooks.items()}
    for name, fn in ns.items():
        fn.__name__ = name
    return type("P", (), {k: staticmethod(v) for k, v in ns.items()})()


def test_duplicate_detector_id_names_both_plugins():
    host = new_host()
    host.register(_plugin(register_detectors=[_det("dup.id")]), name="first-plugin")
    host.register(_plugin(register_detectors=[_det("dup.id")]), name="second-plugin")
    with pytest.raises(PluginError, match="'dup.id'.*first-plugin.*second-plugin"):
        host.detectors()


def test_duplicate_ids_from_entry_points(fake_dists, monkeypatch):
    u = uid()
    det = f"test.dup-{u}"
    fake_dists(f"provscan-a-{u}", {f"pa_{u}": GOOD.format(det_id=det)}, {f"a{u}": f"pa_{u}"})
    fake_dists(f"provscan-b-{u}", {f"pb_{u}": GOOD.format(det_id=det)}, {f"b{u}": f"pb_{u}"})
    monkeypatch.setenv("PROVSCAN_LOAD_PLUGINS", f"a{u},b{u}")
    host = new_host(load_entry_points=True)
    (failure,) = host.failures
    assert failure.name == f"b{u}"
    assert f"a{u}" in failure.error and f"b{u}" in failure.error and det in failure.error
    assert host.detectors()[det].__module__ == f"pa_{u}"  # the first one stays
    monkeypatch.setenv("PROVSCAN_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=f"duplicate detector id '{det}'"):
        new_host(load_entry_points=True)


def test_duplicate_injector_and_model_factory_names():
    host = new_host()
    inj = type("I", (Injector,), {"id": "dup-inj"})
    host.register(_plugin(register_injectors=[inj]), name="p1")
    host.register(_plugin(register_injectors=[type("J", (Injector,), {"id": "dup-inj"})]),
                  name="p2")
    with pytest.raises(PluginError, match="'dup-inj'.*p1.*p2"):
        host.injectors()
    host = new_host()
    host.register(_plugin(register_model_factories={"small-cnn": lambda: None}), name="shadow")
    with pytest.raises(PluginError, match="small-cnn.*provscan.default_plugins.model_factories.*shadow"):
        host.model_factories()


@pytest.mark.parametrize("bad", [[object], ["not-a-class"], Detector, [type("NoId", (Detector,), {})]])
def test_invalid_registry_values_are_rejected(bad):
    host = new_host()
    host.register(_plugin(register_detectors=bad), name="bad-registry")
    with pytest.raises(PluginError, match="bad-registry"):
        host.detectors()


def test_registry_hook_that_raises_is_named():
    def explode():
        raise ValueError("cannot list")

    plugin = type("P", (), {"register_judges": staticmethod(provscan.hookimpl(explode))})()
    explode.__name__ = "register_judges"
    host = new_host()
    host.register(plugin, name="exploding")
    with pytest.raises(PluginError, match="exploding: register_judges raised ValueError"):
        host.judges()


def test_entry_point_name_clash_between_distributions(fake_dists, monkeypatch):
    u = uid()
    fake_dists(f"provscan-x-{u}", {f"px_{u}": GOOD.format(det_id=f"x-{u}")}, {f"same{u}": f"px_{u}"})
    fake_dists(f"provscan-y-{u}", {f"py_{u}": GOOD.format(det_id=f"y-{u}")}, {f"same{u}": f"py_{u}"})
    monkeypatch.setenv("PROVSCAN_LOAD_PLUGINS", f"same{u}")
    host = new_host(load_entry_points=True)
    (failure,) = host.failures
    assert "already used by distribution" in failure.error
    assert host.pm.has_plugin(f"same{u}")  # the first one is kept


def test_unregister_and_infos():
    host = new_host()
    det, inj = _det("info.det"), type("I", (Injector,), {"id": "info.inj"})
    plugin = _plugin(register_detectors=[det], register_injectors=[inj])
    host.register(plugin, name="info-plugin", dist=("provscan-info", "9.9"))
    (info,) = [i for i in host.plugin_infos() if i.name == "info-plugin"]
    assert (info.distribution, info.version, info.builtin) == ("provscan-info", "9.9", False)
    assert info.hooks == ["register_detectors", "register_injectors"]
    assert info.detectors == ["info.det"] and info.injectors == ["info.inj"]
    assert det.plugin == "provscan-info"
    assert {i.name for i in host.plugin_infos() if i.builtin} == set(DEFAULT_PLUGINS)
    assert all(not i.builtin for i in host.plugin_infos(include_builtins=False))
    host.unregister(plugin)
    assert "info.det" not in host.detectors() and "info.inj" not in host.injectors()
    host.unregister(plugin)  # a second time is a no-op
    with pytest.raises(PluginError, match="already registered"):
        host.register(_plugin(), name=DEFAULT_PLUGINS[0])


def test_trace_writes_hook_calls(monkeypatch, capsys):
    monkeypatch.setenv("PROVSCAN_TRACE_PLUGINS", "1")
    host = new_host()
    host.detectors()
    host.hook.scan_started(scan=None)
    err = capsys.readouterr().err
    assert "register_detectors [plugin provscan.default_plugins.file_safety]" in err
    assert "scan_started" in err
    monkeypatch.delenv("PROVSCAN_TRACE_PLUGINS")
    new_host().detectors()
    assert capsys.readouterr().err == ""


def test_normalize_name():
    assert normalize_name(" Provscan_Foo.bar ") == "provscan-foo-bar"
