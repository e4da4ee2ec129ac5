"""The plugin host: a plugin-manager factory and a typed facade over the hook calls.

Entry points in the ``provscan`` group are loaded one at a time; a plugin that fails to import or
register is recorded (distribution, version, exception) and the others still load. Environment:

- ``PROVSCAN_STRICT_PLUGINS=1``: re-raise the first plugin failure instead of recording it.
- ``PROVSCAN_LOAD_PLUGINS=a,b``: load only these entry points (by entry-point or distribution
  name); an empty value loads none.
- ``PROVSCAN_DISABLE_PLUGINS=a,b``: skip these.
- ``PROVSCAN_TRACE_PLUGINS=1``: trace every hook call on stderr.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from provscan import hookspecs
from provscan.detectors import Detector, Injector
from provscan.errors import PluginError

ENTRY_POINT_GROUP = "provscan"

DEFAULT_PLUGINS = (
    "provscan.default_plugins.file_safety",
    "provscan.default_plugins.loaders",
    "provscan.default_plugins.reporters",
    "provscan.default_plugins.models",
)


@dataclass
class PluginFailure:
    """A plugin that could not be loaded, with the reason."""

    name: str
    distribution: str
    version: str
    error: str


@dataclass
class PluginInfo:
    """What ``provscan plugins`` shows for one registered plugin."""

    name: str
    distribution: str
    version: str
    hooks: list[str]
    detectors: list[str] = field(default_factory=list)
    injectors: list[str] = field(default_factory=list)
    builtin: bool = False


def _split_env(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


class Host:
    """A plugin manager plus the registries built from it.

    Build one with :func:`get_host` (entry points on) or :func:`new_host` (fresh, for tests).
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.failures: list[PluginFailure] = []
        self._dists: dict[str, tuple[str, str]] = {}
        self._detectors: dict[str, type[Detector]] | None = None
        self._injectors: dict[str, type[Injector]] | None = None

    # --- registration -------------------------------------------------------------------------
    def register(self, plugin: Any, name: str | None = None, dist: tuple[str, str] | None = None) -> str:
        """Register a plugin module or object; ``dist`` is its (distribution, version)."""
        registered = self.pm.register(plugin, name=name)
        if registered is None:
            raise PluginError(f"plugin {name or plugin!r} is already registered")
        self.pm.check_pending()
        self._dists[registered] = dist or ("provscan", _provscan_version())
        self._detectors = self._injectors = None
        return registered

    def unregister(self, plugin: Any) -> None:
        name = self.pm.get_name(plugin)
        self.pm.unregister(plugin)
        self._dists.pop(name or "", None)
        self._detectors = self._injectors = None

    def load_entry_points(self) -> None:
        strict = _truthy("PROVSCAN_STRICT_PLUGINS")
        only = _split_env("PROVSCAN_LOAD_PLUGINS")
        disabled = _split_env("PROVSCAN_DISABLE_PLUGINS") or set()
        for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist_name = ep.dist.name if ep.dist else "?"
            dist_ver = ep.dist.version if ep.dist else "?"
            if only is not None and not ({ep.name, dist_name} & only):
                continue
            if {ep.name, dist_name} & disabled or self.pm.has_plugin(ep.name):
                continue
            try:
                self.register(ep.load(), name=ep.name, dist=(dist_name, dist_ver))
                self._check_registries(ep.name)
            except Exception as exc:  # noqa: BLE001 - every plugin failure is isolated
                if strict:
                    raise
                if self.pm.has_plugin(ep.name):
                    self.pm.unregister(name=ep.name)
                self.failures.append(
                    PluginFailure(ep.name, dist_name, dist_ver, f"{type(exc).__name__}: {exc}")
                )

    def _check_registries(self, just_loaded: str) -> None:
        try:
            self.detectors()
            self.injectors()
        except PluginError:
            self.pm.unregister(name=just_loaded)
            self._detectors = self._injectors = None
            raise

    # --- registries -------------------------------------------------------------------------
    def _collect(self, hook_name: str, base: type) -> dict[str, Any]:
        found: dict[str, Any] = {}
        owners: dict[str, str] = {}
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            dist, _ = self._dists.get(impl.plugin_name, ("?", "?"))
            for cls in impl.function() or []:
                if not (isinstance(cls, type) and issubclass(cls, base)):
                    raise PluginError(f"plugin {impl.plugin_name} returned {cls!r} from {hook_name}")
                cid = getattr(cls, "id", None)
                if not cid:
                    raise PluginError(f"plugin {impl.plugin_name}: {cls.__name__} has no id")
                if cid in found and found[cid] is not cls:
                    raise PluginError(
                        f"duplicate id {cid!r}: registered by plugin {owners[cid]} and by plugin {impl.plugin_name}"
                    )
                if not cls.__dict__.get("plugin"):
                    cls.plugin = dist
                found[cid] = cls
                owners[cid] = impl.plugin_name
        return found

    def detectors(self) -> dict[str, type[Detector]]:
        if self._detectors is None:
            self._detectors = self._collect("register_detectors", Detector)
        return self._detectors

    def injectors(self) -> dict[str, type[Injector]]:
        if self._injectors is None:
            self._injectors = self._collect("register_injectors", Injector)
        return self._injectors

    def model_factories(self) -> dict[str, Callable[..., Any]]:
        out: dict[str, Callable[..., Any]] = {}
        for d in self.pm.hook.register_model_factories():
            out.update(d or {})
        return out

    def reporters(self) -> dict[str, Any]:
        return {r.name: r for rs in self.pm.hook.register_reporters() for r in (rs or [])}

    def judges(self) -> dict[str, Any]:
        return {j.name: j for js in self.pm.hook.register_judges() for j in (js or [])}

    def scorers(self) -> dict[str, Any]:
        return {s.name: s for ss in self.pm.hook.register_scorers() for s in (ss or [])}

    @property
    def hook(self) -> Any:
        return self.pm.hook

    # --- introspection ------------------------------------------------------------------------
    def plugin_infos(self, include_builtins: bool = True) -> list[PluginInfo]:
        det_owner = self._owners("register_detectors")
        inj_owner = self._owners("register_injectors")
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            dist, ver = self._dists.get(name, ("?", "?"))
            builtin = name in DEFAULT_PLUGINS
            if builtin and not include_builtins:
                continue
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            infos.append(PluginInfo(name, dist, ver, hooks, det_owner.get(name, []),
                                    inj_owner.get(name, []), builtin))
        return sorted(infos, key=lambda i: (not i.builtin, i.name))

    def _owners(self, hook_name: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            out[impl.plugin_name] = sorted(c.id for c in impl.function() or [])
        return out


def _provscan_version() -> str:
    from provscan import __version__

    return __version__


def new_host(load_entry_points: bool = False, builtins: Iterable[str] = DEFAULT_PLUGINS) -> Host:
    """A fresh host with the built-in plugins; entry points only when asked."""
    import importlib

    pm = pluggy.PluginManager("provscan")
    pm.add_hookspecs(hookspecs)
    if _truthy("PROVSCAN_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
    host = Host(pm)
    for mod in builtins:
        host.register(importlib.import_module(mod), name=mod)
    if load_entry_points:
        host.load_entry_points()
    return host


_host: Host | None = None


def get_host() -> Host:
    """The process's host with entry points loaded, built on first use."""
    global _host
    if _host is None:
        _host = new_host(load_entry_points=True)
    return _host


def reset_host() -> None:
    """Forget the cached host (tests, or after installing a plugin in-process)."""
    global _host
    _host = None
