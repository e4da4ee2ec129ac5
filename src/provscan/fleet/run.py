"""The fleet driver: plan the jobs, skip finished ones, run the rest, sign and write each result.

Layout of ``out``::

    out/targets/<name>/certificate.intoto.json   DSSE envelope signed by the driver
    out/targets/<name>/record.dsse.json          signed result key (what makes a re-run skip it)
    out/targets/<name>/report.json|.sarif|.html  reports rendered by the worker
    out/targets/<name>/error.txt                 instead of the above when the target errored
    out/summary.jsonl | summary.html | summary.sarif

Each target folder appears whole or not at all (built in a temporary folder, then renamed); the
summary files are rewritten atomically as targets finish. A Ctrl-C or a crash loses only the
targets in flight; the next run picks up from there.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provscan.certificate import CERT_NAME, sign_statement
from provscan.errors import ProvscanError
from provscan.fleet.cache import (
    RECORD_NAME,
    cached_statement,
    detector_parts,
    result_key,
    scan_detector_ids,
    sign_record,
)
from provscan.fleet.job import HostSpec, Job, JobResult
from provscan.fleet.source import FleetEntry, is_remote, read_source
from provscan.fleet.summary import STATUSES, counts, fleet_exit_code, write_summary
from provscan.fsutil import atomic_dir, atomic_write_bytes
from provscan.keys import load_private_key
from provscan.policy import Policy, load_policy
from provscan.targets.base import OpenOptions

ALWAYS_FORMATS = ("json", "sarif")


@dataclass
class FleetResult:
    rows: list[dict[str, Any]]
    total: int
    scanned: int = 0  # targets sent to workers in this run
    cached: int = 0  # targets skipped because a verified result for the same key exists

    @property
    def counts(self) -> dict[str, int]:
        return counts(self.rows)

    @property
    def exit_code(self) -> int:
        return fleet_exit_code(self.rows)


@dataclass
class _Plan:
    job: Job
    parts: list[list[Any]]
    local: bool
    rows: dict[str, Any] = field(default_factory=dict)


def _merge_params(base: Mapping[str, Mapping[str, Any]], over: Mapping[str, Mapping[str, Any]],
                  ids: list[str]) -> dict[str, dict[str, Any]]:
    merged = {k: dict(v) for k, v in base.items() if k in ids}
    for k, v in over.items():
        merged.setdefault(k, {}).update(v)
    return merged


def plan_jobs(host: Any, entries: list[FleetEntry], detectors: Iterable[str],
              params: Mapping[str, Mapping[str, Any]], seed: int, policy: str | None,
              options: OpenOptions, formats: Iterable[str], host_spec: HostSpec) -> list[_Plan]:
    """Every job with its policy and parameters resolved: bad input fails here, before any work."""
    known = host.detectors()
    reporters = host.reporters()
    fmts = tuple(dict.fromkeys([*ALWAYS_FORMATS, *formats]))
    for f in fmts:
        if f not in reporters:
            raise ProvscanError(f"unknown format {f!r} (known: {', '.join(sorted(reporters))})")
    policies: dict[str | None, Policy] = {}
    plans = []
    for e in entries:
        ref = e.policy if e.policy is not None else policy
        if ref not in policies:
            policies[ref] = load_policy(ref, host)
        pol = policies[ref]
        dets = tuple(e.detectors if e.detectors is not None else detectors)
        local = not is_remote(e.location)
        ids = scan_detector_ids(e.location, dets, pol, local)
        for did in ids:
            if did not in known:
                raise ProvscanError(f"{e.location}: unknown detector {did!r} "
                                    f"(known: {', '.join(sorted(known))})")
        for owner in e.params:
            if owner not in ids:
                raise ProvscanError(f"{e.location}: params name detector {owner!r}, which is not selected")
        merged = _merge_params(params, e.params, ids)
        parts = detector_parts(host, ids, merged)
        need: dict[str, float] = {"CPU": 1.0}
        for did in ids:
            for k, v in getattr(known[did], "resources", {}).items():
                need[k] = max(need.get(k, 0.0), float(v))
        job = Job(e.name, e.location, dets, merged, e.seed if e.seed is not None else seed, pol,
                  pol.open_options(options), fmts, host_spec, {k: v for k, v in need.items() if v})
        plans.append(_Plan(job, parts, local))
    return plans


def run_fleet(source: Path, out: Path, sign: str | Path, *, engine: Any, host: Any,
              detectors: Iterable[str] = (), params: Mapping[str, Mapping[str, Any]] | None = None,
              seed: int = 0, policy: str | None = None, options: OpenOptions | None = None,
              formats: Iterable[str] = ("html",), force: bool = False,
              host_spec: HostSpec | None = None, passphrase: str | None = None,
              prompt: Any = None, progress: Any = None) -> FleetResult:
    """Scan every target of ``source`` into ``out`` (see the module docstring)."""
    entries = read_source(source)
    signer = load_private_key(sign, passphrase, prompt)
    public = signer.public_key()
    plans = plan_jobs(host, entries, detectors, params or {}, seed, policy, options or OpenOptions(),
                      formats, host_spec or HostSpec())
    targets = out / "targets"
    targets.mkdir(parents=True, exist_ok=True)
    lock = open(out / ".lock", "w")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise ProvscanError(f"another provscan verify-many is writing {out}") from None
    try:
        return _run(plans, out, targets, signer, public, engine, force, progress)
    finally:
        lock.close()


def _run(plans: list[_Plan], out: Path, targets: Path, signer: Any, public: Any, engine: Any,
         force: bool, progress: Any) -> FleetResult:
    for stale in targets.glob(".*.partial"):  # left by a run that was killed mid-write
        shutil.rmtree(stale, ignore_errors=True)
    order = {p.job.name: i for i, p in enumerate(plans)}
    rows: dict[str, dict[str, Any]] = {}
    sarif: dict[str, list[dict[str, Any]]] = {}
    todo: list[Job] = []
    for p in plans:
        hit = None if force else _cached(p, targets / p.job.name, public)
        if hit is None:
            todo.append(p.job)
        else:
            rows[p.job.name], sarif[p.job.name] = hit
    result = FleetResult([], len(plans), scanned=len(todo), cached=len(plans) - len(todo))
    last_write = 0.0

    def flush(final: bool = False) -> None:
        nonlocal last_write
        if not final and time.monotonic() - last_write < 1.0:
            return
        names = sorted(rows, key=order.__getitem__)
        write_summary(out, [rows[n] for n in names], [r for n in names for r in sarif.get(n, [])],
                      len(plans))
        last_write = time.monotonic()

    def on_result(res: JobResult) -> None:
        rows[res.name], sarif[res.name] = _write(res, targets / res.name, signer)
        if progress is not None:
            progress(rows[res.name], counts(list(rows.values())), len(rows), len(plans))
        flush()

    if progress is not None:
        shown: list[dict[str, Any]] = []
        for row in rows.values():
            shown.append(row)
            progress(row, counts(shown), len(shown), len(plans))
    try:
        engine.run(todo, on_result)
    finally:
        flush(final=True)
        result.rows = [rows[n] for n in sorted(rows, key=order.__getitem__)]
    return result


def _row(name: str, location: str, status: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "location": location, "status": status, "digest": None, "key": None,
           "cached": False, "reasons": [], "certificate": None, "reports": [], "error": None,
           "duration_s": None, "node": None}
    row.update(kw)
    return row


def _files(folder: Path) -> tuple[str | None, list[str]]:
    rel = f"targets/{folder.name}"
    cert = f"{rel}/{CERT_NAME}" if (folder / CERT_NAME).exists() else None
    reports = sorted(f"{rel}/{p.name}" for p in folder.glob("report.*"))
    return cert, reports


def _cached(plan: _Plan, folder: Path, public: Any) -> tuple[dict[str, Any], list[Any]] | None:
    """A row for a target whose verified result for the same key is already in ``folder``."""
    if not plan.local or not (folder / RECORD_NAME).exists():
        return None  # remote targets: the digest is only known after a worker fetches them
    from provscan.digest import compute_manifest

    try:
        digest = compute_manifest(Path(plan.job.location), ignore=tuple(plan.job.options.ignore)).root_sha256
    except (OSError, ProvscanError):
        return None
    job = plan.job
    key = result_key(digest, job.policy.sha256, plan.parts, job.seed)
    statement = cached_statement(folder, key, digest, public)
    if statement is None:
        return None
    verdict = statement["predicate"]["verdict"]
    cert, reports = _files(folder)
    try:
        runs = json.loads((folder / "report.sarif").read_bytes()).get("runs", [])
    except (OSError, ValueError):
        runs = []
    row = _row(job.name, job.location, verdict["status"], digest=digest, key=key, cached=True,
               reasons=verdict["reasons"], certificate=cert, reports=reports)
    return row, runs


def _write(res: JobResult, folder: Path, signer: Any) -> tuple[dict[str, Any], list[Any]]:
    """Sign the worker's statement and write the target's folder in one rename."""
    node = res.worker.get("node") or f"{res.worker.get('host')}:{res.worker.get('pid')}"
    with atomic_dir(folder, overwrite=True) as tmp:
        if res.statement is None or res.key is None:
            atomic_write_bytes(tmp / "error.txt", f"{res.error}\n{res.worker.get('traceback', '')}".encode())
        else:
            cert = sign_statement(res.statement, [signer])
            atomic_write_bytes(tmp / CERT_NAME, cert)
            for fname, data in res.rendered.items():
                atomic_write_bytes(tmp / fname, data)
            atomic_write_bytes(tmp / RECORD_NAME, sign_record(res.key, cert, res.location, signer))
    if res.statement is None:
        row = _row(res.name, res.location, "error", error=res.error, duration_s=res.duration_s,
                   node=node)
        return row, []
    cert_rel, reports = _files(folder)
    row = _row(res.name, res.location, res.status,
               digest=res.statement["subject"][0]["digest"]["sha256"], key=res.key,
               reasons=res.statement["predicate"]["verdict"]["reasons"], certificate=cert_rel,
               reports=reports, duration_s=round(res.duration_s, 3), node=node)
    return row, (res.sarif or {}).get("runs", [])


def print_progress(stream: Any = None) -> Any:
    """A progress callback: a tqdm bar on a terminal, else one line per finished target."""
    stream = stream or sys.stderr
    bar: Any = None

    def update(row: dict[str, Any], c: dict[str, int], done: int, total: int) -> None:
        nonlocal bar
        live = " ".join(f"{s} {c[s]}" for s in STATUSES)
        if stream.isatty():
            if bar is None:
                from tqdm.auto import tqdm

                bar = tqdm(total=total, desc="targets", file=stream, unit="target")
            bar.set_postfix_str(live, refresh=False)
            bar.update(done - bar.n)
            if done == total:
                bar.close()
        else:
            cached = " (cached)" if row.get("cached") else ""
            stream.write(f"[{done}/{total}] {row['status']:<12} {row['name']}{cached}  ({live})\n")
            stream.flush()

    return update
