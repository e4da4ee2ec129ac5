"""The worker side of a fleet: one target in, an unsigned statement and rendered reports out.

This is the fleet's only contact with the scan pipeline (a thin adapter over ``run_scan`` and
``build_statement``). It runs in a worker process or a Ray task: it never sees a private key. The
driver signs the statement and writes the files (:mod:`provscan.fleet.run`).
"""

from __future__ import annotations

import importlib
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from provscan.fleet.cache import detector_parts, result_key
from provscan.policy import Policy
from provscan.targets.base import OpenOptions


@dataclass(frozen=True)
class HostSpec:
    """How a worker builds its plugin host: entry points (as ``get_host()``) plus these modules,
    imported and registered by name (``--plugin MODULE``, for plugins that are not installed)."""

    load_entry_points: bool = True
    modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Job:
    """One target to scan, with everything resolved by the driver (picklable)."""

    name: str
    location: str
    detectors: tuple[str, ...]
    params: dict[str, dict[str, Any]]
    seed: int
    policy: Policy
    options: OpenOptions
    formats: tuple[str, ...]
    host: HostSpec = field(default_factory=HostSpec)
    resources: dict[str, float] = field(default_factory=lambda: {"CPU": 1})


@dataclass
class JobResult:
    """What a worker sends back: no signature, no file written."""

    name: str
    location: str
    statement: dict[str, Any] | None = None
    rendered: dict[str, bytes] = field(default_factory=dict)  # file name -> bytes
    sarif: dict[str, Any] | None = None  # the target's SARIF log (merged by the driver)
    key: str | None = None
    status: str = "error"  # pass | fail | inconclusive | error
    exit_code: int = 2
    error: str | None = None
    duration_s: float = 0.0
    worker: dict[str, Any] = field(default_factory=dict)


_hosts: dict[HostSpec, Any] = {}


def host_for(spec: HostSpec) -> Any:
    """The worker's host for ``spec`` (built once per process)."""
    from provscan.plugins import get_host, new_host

    if spec not in _hosts:
        host = get_host() if spec.load_entry_points and not spec.modules else new_host(
            load_entry_points=spec.load_entry_points)
        for mod in spec.modules:
            if not host.pm.has_plugin(mod):
                host.register(importlib.import_module(mod), name=mod, dist=(mod, "0"))
        _hosts[spec] = host
    return _hosts[spec]


def worker_info() -> dict[str, Any]:
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        import ray

        if ray.is_initialized():
            info["node"] = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - ray absent or not in a task: no node id
        pass
    return info


def run_job(job: Job) -> JobResult:
    """Scan one target; any failure becomes an ``error`` result (the fleet goes on)."""
    start = time.perf_counter()
    out = JobResult(job.name, job.location, worker=worker_info())
    try:
        _scan(job, out)
    except Exception as exc:  # noqa: BLE001 - one target's failure never stops the fleet
        out.status, out.exit_code = "error", 2
        out.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        out.worker["traceback"] = traceback.format_exc(limit=6)
    out.duration_s = time.perf_counter() - start
    return out


def _scan(job: Job, out: JobResult) -> None:
    from provscan.certificate import build_statement
    from provscan.report.sarif import sarif_dict
    from provscan.scan import Scan, run_scan

    host = host_for(job.host)
    scan = Scan(job.location, list(job.detectors), {k: dict(v) for k, v in job.params.items()},
                job.seed, job.options, job.policy)
    result = run_scan(host, scan)
    statement = build_statement(result)
    reporters = host.reporters()
    out.rendered = {f"report{reporters[f].suffix}": reporters[f]().render(result) for f in job.formats}
    out.sarif = sarif_dict(result)
    out.statement = statement
    out.status, out.exit_code = result.verdict.status, result.exit_code
    parts = detector_parts(host, [ev.detector for ev in result.evidence], job.params)
    out.key = result_key(statement["subject"][0]["digest"]["sha256"], job.policy.sha256, parts,
                         job.seed)
