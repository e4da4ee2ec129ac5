"""Conformance of every detector and injector registered by the installed plugins.

Runs over the process host exactly as ``provscan`` builds it (built-ins plus every ``provscan``
entry point), so a newly installed plugin is checked without editing this file.
"""

from __future__ import annotations

import importlib.metadata as md
import re

import pytest

from provscan.detectors import TARGET_KINDS, Detector, Injector
from provscan.params import Param
from provscan.plugins import new_host

HOST = new_host(load_entry_points=True)
DETECTORS = sorted(HOST.detectors().items())
INJECTORS = sorted(HOST.injectors().items())
ID = re.compile(r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)*$")
VERSION = re.compile(r"^\d+\.\d+(\.\d+)?([.-]?\w+)*$")


def test_every_installed_plugin_loads():
    assert HOST.failures == [], [f"{f.name} ({f.distribution}): {f.error}" for f in HOST.failures]


def test_something_is_registered():
    assert "file-safety" in dict(DETECTORS)


def known_distributions() -> set[str]:
    return {d.metadata["Name"] for d in md.distributions()}


def check_common(cls: type, kind: str) -> None:
    assert ID.match(cls.id), f"{kind} id {cls.id!r}: lowercase words, dashes, dot namespaces"
    assert isinstance(cls.version, str) and VERSION.match(cls.version), cls.version
    assert isinstance(cls.description, str) and len(cls.description.strip()) >= 10
    assert cls.plugin in known_distributions(), f"distribution {cls.plugin!r} is not installed"
    assert isinstance(cls.params, tuple)
    names = [p.name for p in cls.params]
    assert len(names) == len(set(names)), f"duplicate parameter names in {cls.id}"
    for p in cls.params:
        assert isinstance(p, Param), p
        assert re.match(r"^[a-z][a-z0-9_]*$", p.name), p.name
        assert p.type in (int, float, str, bool) or callable(p.type)
        assert p.help, f"{cls.id}.{p.name} has no help"
        if p.default is not None:
            assert p.parse(str(p.default).lower() if p.type is bool else str(p.default),
                           cls.id) == p.default, f"{cls.id}.{p.name}: default does not round-trip"
        if p.choices is not None and p.default is not None:
            assert p.default in p.choices


@pytest.mark.parametrize("det_id,cls", DETECTORS, ids=[d for d, _ in DETECTORS])
def test_detector_conformance(det_id, cls):
    assert issubclass(cls, Detector) and cls.id == det_id
    check_common(cls, "detector")
    assert cls.applies_to, f"{det_id}: applies_to is empty"
    assert set(cls.applies_to) <= set(TARGET_KINDS), cls.applies_to
    assert cls.run is not Detector.run, f"{det_id} does not implement run"


@pytest.mark.parametrize("inj_id,cls", INJECTORS, ids=[i for i, _ in INJECTORS])
def test_injector_conformance(inj_id, cls):
    assert issubclass(cls, Injector) and cls.id == inj_id
    check_common(cls, "injector")
    assert cls.apply is not Injector.apply, f"{inj_id} does not implement apply"
    reserved = {"data", "out", "secret", "seed"}  # arguments of `provscan inject ID`
    assert not reserved & {p.name for p in cls.params}


def test_ids_are_namespaced_unique_across_plugins():
    owners = {}
    for info in HOST.plugin_infos():
        for det in info.detectors:
            assert det not in owners, f"{det} registered by {owners[det]} and {info.name}"
            owners[det] = info.name
    assert set(owners) == set(dict(DETECTORS))
