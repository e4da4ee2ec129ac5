"""One scan: safety scan → digest → open → detectors → policy. No back and forth."""

from __future__ import annotations

import platform
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from provscan.detectors import Detector, detector_rng
from provscan.digest import Manifest
from provscan.errors import MODELS_EXTRA_INSTALL, MissingExtraError, ProvscanError, missing_extra
from provscan.evidence import Claim, Decision, Evidence
from provscan.params import recorded_params, resolve_params
from provscan.plugins import Host
from provscan.policy import Policy, PolicyVerdict, evaluate
from provscan.progress import progress
from provscan.safety import SafetyReport
from provscan.targets.base import FilesTarget, OpenOptions, Target

FILE_SAFETY = "file-safety"


@dataclass
class Scan:
    """What was asked: the target, detectors, their parameters, seed, options and policy."""

    location: str
    detector_ids: list[str]
    params: dict[str, dict[str, Any]]
    seed: int
    options: OpenOptions
    policy: Policy
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    target: Target | None = None
    manifest: Manifest | None = None
    safety: SafetyReport | None = None
    identity: dict[str, str] = field(default_factory=dict)  # from resolve_location (hf://, models:/)


@dataclass
class ScanResult:
    scan: Scan
    evidence: list[Evidence]
    verdict: PolicyVerdict
    finished_at: str
    environment: dict[str, Any]
    plugins: dict[str, str] = field(default_factory=dict)  # distribution -> version
    certificate: bytes | None = None  # the signed DSSE envelope, when signed (provscan.api)
    outputs: dict[str, Path] = field(default_factory=dict)  # files written (provscan.api)
    rendered: dict[str, bytes] = field(default_factory=dict)  # format -> report bytes

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code


def environment() -> dict[str, Any]:
    """Versions and platform; ``torch`` when installed, ``cuda`` only when the scan imported torch
    (a scan that loaded no model neither needs nor imports it)."""
    import importlib.metadata as md
    import sys

    from provscan import __version__

    env: dict[str, Any] = {"provscan": __version__, "python": platform.python_version(),
                           "platform": platform.platform()}
    try:
        env["torch"] = md.version("torch")
    except md.PackageNotFoundError:
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch"] = torch.__version__
        env["cuda"] = bool(torch.cuda.is_available())
    return env


def plugin_versions(host: Host) -> dict[str, str]:
    """Distribution name → version of every registered plugin (provscan itself included)."""
    return {info.distribution: info.version for info in host.plugin_infos()}


def check_detectors(host: Host, ids: list[str], params: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Validate detector ids and parameters up front (exit 2 before anything runs)."""
    known = host.detectors()
    for did in ids:
        if did not in known:
            raise ProvscanError(f"unknown detector {did!r} (known: {', '.join(sorted(known))})")
    for owner in params:
        if owner not in ids:
            raise ProvscanError(f"--param names detector {owner!r}, which is not selected")
    return {did: resolve_params(did, known[did].params, params.get(did, {})) for did in ids}


def with_input_hints(options: OpenOptions, host: Host, params: dict[str, dict[str, Any]]) -> OpenOptions:
    """Fill ``input_shape`` / ``num_classes`` the user left out from the selected detectors'
    :meth:`~provscan.detectors.Detector.input_hints` (e.g. the taggants secret's key shape);
    what the user gave always wins, and detectors that disagree leave the value unset."""
    import dataclasses

    detectors = host.detectors()
    found: dict[str, set[Any]] = {"input_shape": set(), "num_classes": set()}
    for did, resolved in params.items():
        try:
            hints = detectors[did].input_hints(resolved)
        except ProvscanError:
            continue  # the detector reports the same problem itself when it runs
        for key in found:
            if hints.get(key) is not None:
                found[key].add(tuple(hints[key]) if key == "input_shape" else int(hints[key]))
    fill = {key: next(iter(values)) for key, values in found.items()
            if getattr(options, key) is None and len(values) == 1}
    return dataclasses.replace(options, **fill) if fill else options


def run_scan(host: Host, scan: Scan) -> ScanResult:
    """Run every selected detector against the target, isolating plugin failures."""
    from provscan.checkpoint import open_checkpoint

    asked = list(dict.fromkeys([*scan.detector_ids, *scan.policy.required_detectors()]))
    resolved_params = check_detectors(host, list(dict.fromkeys([FILE_SAFETY, *asked])), scan.params)
    options = with_input_hints(scan.options, host, resolved_params)
    with open_checkpoint(host, scan.location, options) as opened:
        scan.manifest, scan.safety, scan.target = opened.manifest, opened.safety, opened.target
        scan.identity = dict(opened.identity)
        load_error = opened.load_error
        needs_model = [did for did in asked if did != FILE_SAFETY]
        if scan.target is None and needs_model and load_error and MODELS_EXTRA_INSTALL in load_error:
            raise MissingExtraError(f"detector {needs_model[0]} needs a loaded model: "
                                    f"{load_error.removeprefix('not loaded: ')}")
        # File safety is about loading local files; an endpoint target has none, so it runs there
        # only when asked for (and then reports inconclusive: nothing could be scanned).
        ids = list(dict.fromkeys([FILE_SAFETY, *asked])) if opened.is_local else asked
        evidence: list[Evidence] = []
        # file-level detectors (file safety, signatures) read the local files, loaded model or not
        local = str(opened.path) if opened.path is not None else scan.location
        files_target = FilesTarget(local, "files", scan.manifest, scan.safety)
        files_target.host = host
        host.hook.scan_started(scan=scan)
        detectors = host.detectors()
        for did in progress(ids, desc="detectors", total=len(ids)):
            cls = detectors[did]
            on_files = did == FILE_SAFETY or cls.applies_to == ("files",)
            if on_files and opened.changed is not None:
                ev = inconclusive(cls, "files", resolved_params[did], load_error or "")
            else:
                target = files_target if on_files else scan.target
                ev = _run_one(cls, target, resolved_params[did], scan.seed, load_error)
            ev.params = recorded_params(cls.params, ev.params)  # local paths → name + digest
            evidence.append(ev)
    plugins = plugin_versions(host)
    result = ScanResult(scan, evidence, evaluate(scan.policy, evidence, plugins),
                        datetime.now(timezone.utc).isoformat(), environment(), plugins)
    host.hook.scan_finished(scan=scan, result=result)
    return result


def _run_one(cls: type[Detector], target: Target | None, params: dict[str, Any], seed: int,
             load_error: str | None) -> Evidence:
    kind = target.kind if target is not None else "unloaded"
    if target is None or (cls.applies_to and target.kind not in cls.applies_to):
        reason = (load_error or "the target could not be opened") if target is None else (
            f"{cls.id} applies to {', '.join(cls.applies_to)}, not to a {target.kind} target")
        return inconclusive(cls, kind, params, reason)
    start = time.perf_counter()
    try:
        ev = cls().run(target, params, detector_rng(seed, cls.id))
        ev.params = ev.params or params
        ev.seeds = ev.seeds or {"seed": seed}
    except Exception as exc:  # noqa: BLE001 - a plugin failure must not sink the scan
        extra = missing_extra(exc)
        if extra is not None:  # an installation problem, not a finding about the model
            raise MissingExtraError(f"detector {cls.id}: {extra}") from None
        ev = Evidence(cls.id, cls.version, cls.plugin, kind, [], params=params, seeds={"seed": seed},
                      error=f"{type(exc).__name__}: {exc}",
                      details={"traceback": traceback.format_exc(limit=8)})
    ev.duration_s = time.perf_counter() - start
    return ev


def inconclusive(cls: type[Detector], kind: str, params: dict[str, Any], reason: str) -> Evidence:
    claim = Claim(name="not-run", null_hypothesis="n/a", test="none", statistic=None, p_value=None,
                  alpha=0.0, n=0, decision=Decision.INCONCLUSIVE, summary=reason)
    return Evidence(cls.id, cls.version, cls.plugin, kind, [claim], primary="not-run", params=params)
