"""Typed parameters for detectors and injectors, parsed from ``--param ID.KEY=VALUE``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provscan.errors import ProvscanError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """One parameter: name, type (int, float, str, bool or path), default and help text."""

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] | None = None

    def parse(self, raw: Any, owner: str = "") -> Any:
        where = f"{owner}.{self.name}" if owner else self.name
        if not isinstance(raw, str):
            value = raw
        elif self.type is bool:
            low = raw.strip().lower()
            if low not in _TRUE | _FALSE:
                raise ProvscanError(f"parameter {where}: expected true or false, got {raw!r}")
            value = low in _TRUE
        else:
            try:
                value = self.type(raw)
            except (TypeError, ValueError):
                raise ProvscanError(
                    f"parameter {where}: expected {self.type.__name__}, got {raw!r}"
                ) from None
        if self.choices is not None and value not in self.choices:
            raise ProvscanError(f"parameter {where}: {value!r} is not one of {', '.join(self.choices)}")
        return value


def resolve_params(owner: str, declared: tuple[Param, ...], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with the given values; unknown names are an error naming the owner."""
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
