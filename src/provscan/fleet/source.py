"""Reading a fleet SOURCE: a text file of targets, or a JSONL manifest with per-target overrides.

Text file: one target per line (a local path, an endpoint URL, ``hf://…`` or ``models:/…`` where
an installed resolver supports it); blank lines and lines starting with ``#`` are ignored.

JSONL manifest (chosen when the file ends in ``.jsonl`` or its first non-blank line starts with
``{``): one object per line with ``location`` (required) and optionally ``id`` (the name of the
target's output folder), ``detectors`` (a list, replaces the command's ``--detector``), ``params``
(``{detector: {key: value}}``, merged over the command's ``--param``), ``policy`` (a file or
``builtin:NAME``, replaces ``--policy``) and ``seed`` (replaces ``--seed``).

Relative paths are taken relative to the SOURCE file's folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provscan.errors import ProvscanError

MAX_SOURCE_BYTES = 64 * 1024 * 1024
_KEYS = {"location", "id", "detectors", "params", "policy", "seed"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class FleetEntry:
    """One target of a fleet as the SOURCE gives it (overrides are ``None`` when absent)."""

    location: str
    id: str | None = None
    detectors: tuple[str, ...] | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    policy: str | None = None
    seed: int | None = None

    @property
    def name(self) -> str:
        """A stable folder name: a readable tail of the id or location plus a short hash of it."""
        ident = self.id or self.location
        tail = "/".join(ident.rstrip("/").split("://")[-1].split("/")[-2:])
        readable = _UNSAFE.sub("-", tail)[-40:].strip("-.") or "target"
        return f"{readable}-{hashlib.sha256(ident.encode()).hexdigest()[:10]}"


def is_remote(location: str) -> bool:
    return "://" in location or location.startswith("models:/")


def _local(location: str, base: Path) -> str:
    if is_remote(location):
        return location
    p = Path(location).expanduser()
    return str(p if p.is_absolute() else (base / p))


def read_source(source: Path) -> list[FleetEntry]:
    """Parse SOURCE; a malformed line or a duplicate target is a usage error (exit 2)."""
    try:
        if source.stat().st_size > MAX_SOURCE_BYTES:
            raise ProvscanError(f"{source}: larger than {MAX_SOURCE_BYTES} bytes")
        text = source.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvscanError(f"cannot read fleet source {source}: {exc}") from None
    base = source.resolve().parent
    lines = [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1)]
    lines = [(i, line) for i, line in lines if line and not line.startswith("#")]
    manifest = source.suffix == ".jsonl" or (bool(lines) and lines[0][1].startswith("{"))
    entries = [(_entry(line, i, source, base) if manifest
                else FleetEntry(_local(line, base))) for i, line in lines]
    if not entries:
        raise ProvscanError(f"{source}: no targets")
    seen: dict[str, int] = {}
    for n, e in enumerate(entries):
        if e.name in seen:
            raise ProvscanError(f"{source}: target {e.id or e.location!r} appears twice "
                                "(give each entry its own \"id\" in a JSONL manifest)")
        seen[e.name] = n
    return entries


def _entry(line: str, lineno: int, source: Path, base: Path) -> FleetEntry:
    where = f"{source}:{lineno}"
    try:
        obj = json.loads(line)
    except ValueError:
        raise ProvscanError(f"{where}: not a JSON object") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("location"), str) or not obj["location"]:
        raise ProvscanError(f"{where}: expected an object with a \"location\" string")
    unknown = set(obj) - _KEYS
    if unknown:
        raise ProvscanError(f"{where}: unknown keys {', '.join(sorted(unknown))} "
                            f"(known: {', '.join(sorted(_KEYS))})")
    detectors = obj.get("detectors")
    if detectors is not None and (not isinstance(detectors, list)
                                  or not all(isinstance(d, str) for d in detectors)):
        raise ProvscanError(f"{where}: \"detectors\" must be a list of detector ids")
    params = obj.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise ProvscanError(f"{where}: \"params\" must map detector ids to objects")
    policy = obj.get("policy")
    if policy is not None and not isinstance(policy, str):
        raise ProvscanError(f"{where}: \"policy\" must be a string")
    seed = obj.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ProvscanError(f"{where}: \"seed\" must be an integer")
    ident = obj.get("id")
    if ident is not None and (not isinstance(ident, str) or not ident):
        raise ProvscanError(f"{where}: \"id\" must be a non-empty string")
    if policy is not None and not policy.startswith("builtin:"):
        policy = _local(policy, base)
    return FleetEntry(_local(obj["location"], base), ident,
                      None if detectors is None else tuple(detectors),
                      {k: dict(v) for k, v in params.items()}, policy, seed)
