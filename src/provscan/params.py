"""Typed parameters for detectors and injectors, parsed from ``--param ID.KEY=VALUE``.

Every value is checked when the scan is set up, before anything runs: its type, its declared
range (``ge``/``gt``/``le``/``lt``), its allowed ``choices``, and for floats that it is finite.
A bad value is a usage error (exit 2, one line).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from provscan.errors import ProvscanError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """One parameter: name, type (int, float, str, bool or a parsing callable), default, help.

    ``choices`` lists the allowed values; ``ge``/``gt``/``le``/``lt`` bound a number (inclusive /
    exclusive). Floats must be finite. ``path=True`` marks a value that may name a local file or
    directory (a comma-separated list when the help says so): reports and certificates record it
    as ``{"name", "sha256"}`` (:func:`provscan.file_ref`), never as a local path. ``None`` (no
    value) is always accepted: the plugin decides whether the parameter is required.
    """

    name: str
    type: Any = str
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    path: bool = False

    def parse(self, raw: Any, owner: str = "") -> Any:
        """``raw`` (a string from the command line, or a Python value) checked and converted."""
        where = f"{owner}.{self.name}" if owner else self.name
        if raw is None:
            return None
        value = self._convert(raw, where)
        self.check(value, where)
        return value

    def _convert(self, raw: Any, where: str) -> Any:
        if self.type is bool:
            if isinstance(raw, bool):
                return raw
            low = str(raw).strip().lower()
            if low not in _TRUE | _FALSE:
                raise ProvscanError(f"parameter {where}: expected true or false, got {raw!r}")
            return low in _TRUE
        if self.type is int:
            if isinstance(raw, bool) or isinstance(raw, float) and not raw.is_integer():
                raise ProvscanError(f"parameter {where}: expected int, got {raw!r}")
            if isinstance(raw, int | float):
                return int(raw)
        if self.type is float and isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if self.type is str and isinstance(raw, os.PathLike):
            return os.fspath(raw)
        if self.type is str and not isinstance(raw, str):
            raise ProvscanError(f"parameter {where}: expected str, got {raw!r}")
        try:
            return self.type(raw)
        except (TypeError, ValueError, OverflowError):
            name = getattr(self.type, "__name__", "value")
            raise ProvscanError(f"parameter {where}: expected {name}, got {raw!r}") from None

    def check(self, value: Any, where: str = "") -> None:
        """Raise :class:`ProvscanError` when ``value`` is outside the declared range or choices."""
        where = where or self.name
        if isinstance(value, float) and not math.isfinite(value):
            raise ProvscanError(f"parameter {where}: must be a finite number, got {value!r}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise ProvscanError(f"parameter {where}: {value!r} is not one of {allowed}")
        if not isinstance(value, int | float) or isinstance(value, bool):
            return
        broken = ((self.ge is not None and not value >= self.ge)
                  or (self.gt is not None and not value > self.gt)
                  or (self.le is not None and not value <= self.le)
                  or (self.lt is not None and not value < self.lt))
        if broken:
            raise ProvscanError(f"parameter {where}: {value!r} is out of range ({self.range_text()})")

    def range_text(self) -> str:
        """The declared range in words, e.g. ``0 < x <= 1`` ("" when unbounded)."""
        low = f"{self.ge:g} <= " if self.ge is not None else f"{self.gt:g} < " if self.gt is not None else ""
        high = f" <= {self.le:g}" if self.le is not None else f" < {self.lt:g}" if self.lt is not None else ""
        return f"{low}{self.name}{high}" if low or high else ""


def resolve_params(owner: str, declared: tuple[Param, ...], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with the given values, each checked; unknown names are an error."""
    known = {p.name: p for p in declared}
    unknown = sorted(set(given) - set(known))
    if unknown:
        names = ", ".join(sorted(known)) or "none"
        raise ProvscanError(f"unknown parameter {owner}.{unknown[0]} (known: {names})")
    out = {p.name: p.default for p in declared}
    for name, raw in given.items():
        out[name] = known[name].parse(raw, owner)
    return out


def parse_param_options(options: tuple[str, ...] | list[str]) -> dict[str, dict[str, str]]:
    """Split ``ID.KEY=VALUE`` strings into ``{ID: {KEY: VALUE}}``; detector ids may contain dots
    only before the last one, so the key is what follows the last dot before ``=``."""
    out: dict[str, dict[str, str]] = {}
    for opt in options:
        head, sep, value = opt.partition("=")
        owner, dot, key = head.rpartition(".")
        if not sep or not dot or not owner or not key:
            raise ProvscanError(f"malformed --param {opt!r}: expected ID.KEY=VALUE")
        out.setdefault(owner, {})[key] = value
    return out


def recorded_params(declared: tuple[Param, ...], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as reports and certificates record them: every ``path=True`` parameter that
    names existing local files or directories (one, or a comma-separated list) becomes
    ``{"name", "sha256"}`` (:func:`provscan.file_ref`); everything else is kept as is."""
    from pathlib import Path

    from provscan.digest import file_ref

    paths = {p.name for p in declared if p.path}
    out = dict(values)
    for name in paths & set(values):
        value = values[name]
        if not isinstance(value, str | Path) or not str(value).strip():
            continue
        parts = [s.strip() for s in str(value).split(",") if s.strip()] if "," in str(value) else [str(value)]
        if all(Path(s).exists() for s in parts):
            refs = [file_ref(s) for s in parts]
            out[name] = refs[0] if len(refs) == 1 and "," not in str(value) else refs
        elif any(Path(s).is_absolute() for s in parts):
            out[name] = [{"name": Path(s).name} for s in parts] if "," in str(value) else {"name": Path(str(value)).name}
    return out
