"""The plugin host: a plugin-manager factory and a typed facade over the hook calls.

Entry points in the ``provscan`` group are loaded one at a time, sorted by name; a plugin that fails
to import or register is recorded (entry point, distribution, version, exception) and the others
still load. Environment:

- ``PROVSCAN_STRICT_PLUGINS=1``: the first plugin failure raises :class:`PluginError` (naming the
  plugin) instead of being recorded.
- ``PROVSCAN_LOAD_PLUGINS=a,b``: load only these entry points (by entry-point or distribution
  name; ``provscan_x`` and ``provscan-x`` are the same name); an empty value loads none. A name
  that matches nothing installed is recorded as a failure.
- ``PROVSCAN_DISABLE_PLUGINS=a,b``: skip these.
- ``PROVSCAN_TRACE_PLUGINS=1``: trace every hook call on stderr.

Built-in plugins (:data:`DEFAULT_PLUGINS`) always load; they use the same hooks as any other.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import re
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
    "provscan.default_plugins.signing",
    "provscan.default_plugins.loaders",
    "provscan.default_plugins.hf_hub",
    "provscan.default_plugins.reporters",
    "provscan.default_plugins.model_factories",
)

#: Hooks whose results are registries keyed by a name; checked when each plugin loads.
REGISTRY_HOOKS = ("register_detectors", "register_injectors", "register_model_factories",
                  "register_reporters", "register_judges", "register_scorers")


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


def normalize_name(name: str) -> str:
    """Compare plugin and distribution names the way pip does (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _split_env(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return {normalize_name(p) for p in raw.split(",") if p.strip()}


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class Host:
    """A plugin manager plus the registries built from it.

    Build one with :func:`get_host` (entry points on) or :func:`new_host` (fresh, for tests).
    """

    def __init__(self, pm: pluggy.PluginManager, builtins: Iterable[str] = ()) -> None:
        self.pm = pm
        self.failures: list[PluginFailure] = []
        self.builtins = frozenset(builtins)
        self._dists: dict[str, tuple[str, str]] = {}
        self._detectors: dict[str, type[Detector]] | None = None
        self._injectors: dict[str, type[Injector]] | None = None

    # --- registration -------------------------------------------------------------------------
    def register(self, plugin: Any, name: str | None = None,
                 dist: tuple[str, str] | None = None) -> str:
        """Register a plugin module or object; ``dist`` is its (distribution, version).

        Raises :class:`PluginError` (and leaves nothing registered) when the name is taken, a hook
        implementation does not match its spec, or a function marked ``@hookimpl`` names no hook.
        """
        label = name or getattr(plugin, "__name__", None) or repr(plugin)
        if name is not None and self.pm.has_plugin(name):
            raise PluginError(f"plugin {name} is already registered")
        try:
            registered = self.pm.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"plugin {label}: {exc}") from exc
        if registered is None:
            raise PluginError(f"plugin {label} is blocked")
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(plugin)
            raise PluginError(f"plugin {label}: {exc}") from exc
        self._dists[registered] = dist or ("provscan", _provscan_version())
        self._invalidate()
        return registered

    def unregister(self, plugin: Any) -> None:
        """Unregister a plugin object (a no-op when it is not registered)."""
        name = self.pm.get_name(plugin)
        if name is None:
            return
        self.pm.unregister(plugin)
        self._dists.pop(name, None)
        self._invalidate()

    def distribution(self, plugin_name: str) -> tuple[str, str]:
        """(distribution, version) of a registered plugin, ``("?", "?")`` when unknown."""
        return self._dists.get(plugin_name, ("?", "?"))

    def _invalidate(self) -> None:
        self._detectors = self._injectors = None

    def load_entry_points(self, only: set[str] | None = None, disabled: set[str] | None = None,
                          strict: bool | None = None, use_env: bool = True) -> None:
        """Load the ``provscan`` entry points one by one, isolating failures.

        ``only``/``disabled``/``strict`` default to the ``PROVSCAN_*`` environment variables
        (unless ``use_env`` is false, as the docs generator does).
        """
        if use_env:
            only = _split_env("PROVSCAN_LOAD_PLUGINS") if only is None else only
            disabled = _split_env("PROVSCAN_DISABLE_PLUGINS") if disabled is None else disabled
            strict = _truthy("PROVSCAN_STRICT_PLUGINS") if strict is None else strict
        only = None if only is None else {normalize_name(n) for n in only}
        disabled = {normalize_name(n) for n in disabled or ()}
        matched: set[str] = set()
        for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist_name = ep.dist.name if ep.dist else "?"
            dist_ver = ep.dist.version if ep.dist else "?"
            keys = {normalize_name(ep.name), normalize_name(dist_name)}
            if only is not None:
                if not keys & only:
                    continue
                matched |= keys & only
            if keys & disabled:
                continue
            try:
                if self.pm.has_plugin(ep.name):
                    other, other_ver = self.distribution(ep.name)
                    raise PluginError(f"entry point name {ep.name!r} is already used by "
                                      f"distribution {other} {other_ver}")
                self.register(ep.load(), name=ep.name, dist=(dist_name, dist_ver))
                self._check_registries(ep.name)
            except Exception as exc:  # noqa: BLE001 - every plugin failure is isolated
                if self.pm.has_plugin(ep.name) and self.distribution(ep.name)[0] == dist_name:
                    self.pm.unregister(name=ep.name)
                    self._dists.pop(ep.name, None)
                    self._invalidate()
                failure = PluginFailure(ep.name, dist_name, dist_ver, _describe(exc))
                if strict:
                    raise PluginError(f"plugin {ep.name} ({dist_name} {dist_ver}) failed to load: "
                                      f"{failure.error}") from exc
                self.failures.append(failure)
        for missing in sorted((only or set()) - matched):
            failure = PluginFailure(missing, "?", "?",
                                    "named in PROVSCAN_LOAD_PLUGINS but no such plugin is installed")
            if strict:
                raise PluginError(f"plugin {missing}: {failure.error}")
            self.failures.append(failure)

    def _check_registries(self, just_loaded: str) -> None:
        """Call every registry hook so a bad return value or a duplicate id fails now."""
        self._invalidate()
        self.detectors()
        self.injectors()
        self.model_factories()
        self.reporters()
        self.judges()
        self.scorers()

    # --- registries -------------------------------------------------------------------------
    def _impl_results(self, hook_name: str) -> list[tuple[str, Any]]:
        """(plugin name, result) of each implementation of a registry hook, in registration order."""
        tracer = self.pm.trace.root.get("hook")
        out = []
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            tracer(f"{hook_name} [plugin {impl.plugin_name}]")
            try:
                result = impl.function()
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"plugin {impl.plugin_name}: {hook_name} raised "
                                  f"{_describe(exc)}") from exc
            out.append((impl.plugin_name, result))
        return out

    def _collect_classes(self, hook_name: str, base: type) -> dict[str, Any]:
        found: dict[str, Any] = {}
        owners: dict[str, str] = {}
        for plugin_name, result in self._impl_results(hook_name):
            dist, _ = self.distribution(plugin_name)
            if result is None:
                continue
            if not isinstance(result, (list, tuple)):
                raise PluginError(f"plugin {plugin_name}: {hook_name} must return a list of "
                                  f"classes, not {type(result).__name__}")
            for cls in result:
                if not (isinstance(cls, type) and issubclass(cls, base)):
                    raise PluginError(f"plugin {plugin_name} returned {cls!r} from {hook_name} "
                                      f"(expected a subclass of {base.__name__})")
                cid = getattr(cls, "id", None)
                if not isinstance(cid, str) or not cid:
                    raise PluginError(f"plugin {plugin_name}: {cls.__name__} has no id")
                if cid in found and found[cid] is not cls:
                    raise PluginError(f"duplicate {base.__name__.lower()} id {cid!r}: registered "
                                      f"by plugin {owners[cid]} and by plugin {plugin_name}")
                if not cls.__dict__.get("plugin"):
                    cls.plugin = dist  # type: ignore[attr-defined]
                found[cid] = cls
                owners[cid] = plugin_name
        return found

    def _collect_named(self, hook_name: str) -> dict[str, Any]:
        """Merge registries of objects with a ``name`` (or a name->object dict)."""
        found: dict[str, Any] = {}
        owners: dict[str, str] = {}
        for plugin_name, result in self._impl_results(hook_name):
            if result is None:
                continue
            if isinstance(result, dict):
                items = list(result.items())
            elif isinstance(result, (list, tuple)):
                items = [(getattr(obj, "name", None), obj) for obj in result]
            else:
                raise PluginError(f"plugin {plugin_name}: {hook_name} returned "
                                  f"{type(result).__name__}, not a list or dict")
            for key, obj in items:
                if not isinstance(key, str) or not key:
                    raise PluginError(f"plugin {plugin_name}: {hook_name} returned {obj!r} "
                                      "without a name")
                if key in found and found[key] is not obj:
                    raise PluginError(f"duplicate name {key!r} in {hook_name}: registered by "
                                      f"plugin {owners[key]} and by plugin {plugin_name}")
                found[key], owners[key] = obj, plugin_name
        return found

    def detectors(self) -> dict[str, type[Detector]]:
        """Every registered detector class by id."""
        if self._detectors is None:
            self._detectors = self._collect_classes("register_detectors", Detector)
        return self._detectors

    def injectors(self) -> dict[str, type[Injector]]:
        """Every registered injector class by id."""
        if self._injectors is None:
            self._injectors = self._collect_classes("register_injectors", Injector)
        return self._injectors

    def model_factories(self) -> dict[str, Callable[..., Any]]:
        """Architecture factories by name; a name registered twice is an error."""
        factories = self._collect_named("register_model_factories")
        for name, fn in factories.items():
            if not callable(fn):
                raise PluginError(f"model factory {name!r} is not callable")
        return factories

    def reporters(self) -> dict[str, Any]:
        """Report writer classes by format name."""
        return self._collect_named("register_reporters")

    def judges(self) -> dict[str, Any]:
        """Judge classes by name."""
        return self._collect_named("register_judges")

    def scorers(self) -> dict[str, Any]:
        """Text scorer classes by name."""
        return self._collect_named("register_scorers")

    @property
    def hook(self) -> Any:
        """The pluggy hook relay (``host.hook.open_target(...)``)."""
        return self.pm.hook

    # --- introspection ------------------------------------------------------------------------
    def plugin_infos(self, include_builtins: bool = True) -> list[PluginInfo]:
        """One entry per registered plugin: built-ins first, then by name."""
        det_owner = self._owners("register_detectors", self.detectors())
        inj_owner = self._owners("register_injectors", self.injectors())
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:  # blocked names
                continue
            dist, ver = self.distribution(name)
            builtin = name in self.builtins
            if builtin and not include_builtins:
                continue
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            infos.append(PluginInfo(name, dist, ver, hooks, det_owner.get(name, []),
                                    inj_owner.get(name, []), builtin))
        return sorted(infos, key=lambda i: (not i.builtin, i.name))

    def _owners(self, hook: str, registry: dict[str, Any]) -> dict[str, list[str]]:
        ids = set(registry)
        out: dict[str, list[str]] = {}
        for plugin_name, result in self._impl_results(hook):
            out[plugin_name] = sorted(c.id for c in result or [] if getattr(c, "id", None) in ids)
        return out


def _provscan_version() -> str:
    from provscan import __version__

    return __version__


def new_host(load_entry_points: bool = False, builtins: Iterable[str] = DEFAULT_PLUGINS,
             trace: bool | None = None) -> Host:
    """A fresh host with the built-in plugins; entry points only when asked.

    No global state is touched: each call builds its own plugin manager.
    """
    builtins = tuple(builtins)
    pm = pluggy.PluginManager("provscan")
    pm.add_hookspecs(hookspecs)
    if _truthy("PROVSCAN_TRACE_PLUGINS") if trace is None else trace:
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    host = Host(pm, builtins)
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
