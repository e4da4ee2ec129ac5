"""The release gate for one model version: scan it, then write the verdict back to the registry.

Write-back contract (docs/registry.md):

- model-version tags ``provscan.verdict`` (``pass`` | ``fail`` | ``inconclusive`` | ``error``),
  ``provscan.policy`` (``NAME sha256:DIGEST``), ``provscan.certificate.sha256`` (SHA-256 of the
  signed envelope; removed when a scan produced none), ``provscan.reason`` (one line, at most
  :data:`REASON_MAX` characters), ``provscan.run_id`` and ``provscan.certificate.uri`` (where the
  artifacts are);
- the certificate and reports as artifacts under ``provscan/`` of a dedicated run (one per scanned
  version, in the experiment named by ``GateSettings.experiment``; the model's own training run is
  never modified);
- on ``pass`` the alias (``certified`` by default) is set to the version unless a higher version
  already holds it; on any other verdict the alias is removed when it points at this version.

Every step is idempotent, so a job that is retried after a crash ends in the same state.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provscan import ProvscanError
from provscan_mlflow.location import URI_KEY, client_for

REASON_MAX = 500
DEFAULT_ALIAS = "certified"
DEFAULT_EXPERIMENT = "provscan-gate"
ARTIFACT_DIR = "provscan"
TAGS = ("provscan.verdict", "provscan.policy", "provscan.certificate.sha256", "provscan.reason",
        "provscan.run_id", "provscan.certificate.uri")
_alias_locks: dict[str, threading.Lock] = {}
_alias_locks_guard = threading.Lock()
_experiment_lock = threading.Lock()


class TransientError(Exception):
    """The registry could not be reached or answered with a server error: try again later."""


@dataclass(frozen=True)
class GateSettings:
    """How every version is scanned and where the results go."""

    tracking_uri: str
    sign: tuple[str, ...]
    policy: str | None = "builtin:fail-closed"
    detectors: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    seed: int = 0
    alias: str = DEFAULT_ALIAS
    experiment: str = DEFAULT_EXPERIMENT
    formats: tuple[str, ...] = ("json", "sarif", "text")
    extra: dict[str, Any] = field(default_factory=dict)
    host: Any = field(default=None, compare=False, repr=False)  # the plugin host running the scans


@dataclass(frozen=True)
class GateOutcome:
    name: str
    version: str
    verdict: str
    reason: str
    policy: str
    certificate_sha256: str | None
    scan_run_id: str | None
    alias: str  # set | kept-newer | removed | unchanged (what happened to the alias)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _lock_for(name: str) -> threading.Lock:
    with _alias_locks_guard:
        return _alias_locks.setdefault(name, threading.Lock())


def _is_missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def _transient(exc: Exception) -> TransientError:
    text = str(exc).strip().splitlines()
    return TransientError(f"{type(exc).__name__}: {text[0] if text else ''}")


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= REASON_MAX else line[: REASON_MAX - 1] + "…"


def scan_run(client: Any, settings: GateSettings, name: str, version: str, existing: str | None,
             scan_key: str | None = None) -> str:
    """The run that holds this version's artifacts.

    ``existing`` when it still exists; else the run tagged ``provscan.scan_key = scan_key`` (a job
    retried after a crash between creating its run and recording it); else a new run.
    """
    from mlflow.exceptions import MlflowException

    if existing:
        try:
            client.get_run(existing)
            return existing
        except MlflowException as exc:
            if not _is_missing(exc):
                raise
    with _experiment_lock:
        exp = client.get_experiment_by_name(settings.experiment)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(settings.experiment)
    tags = {"provscan.model.name": name, "provscan.model.version": version}
    if scan_key:
        found = client.search_runs([exp_id], f"tags.`provscan.scan_key` = '{_filter_value(scan_key)}'",
                                   max_results=1)
        if found:
            return str(found[0].info.run_id)
        tags["provscan.scan_key"] = scan_key
    run = client.create_run(exp_id, run_name=f"{name}-v{version}", tags=tags)
    return str(run.info.run_id)


def _filter_value(text: str) -> str:
    if "'" in text or "\\" in text:
        raise ProvscanError(f"cannot search for {text!r}")
    return text


def run_scan(settings: GateSettings, name: str, version: str, out: Path) -> dict[str, Any]:
    """Scan ``models:/name/version`` with the gate's policy; what the write-back needs."""
    from provscan import OpenOptions, verify

    options = OpenOptions(extra={**settings.extra, URI_KEY: settings.tracking_uri})
    try:
        res = verify(f"models:/{name}/{version}", detectors=settings.detectors, params=settings.params,
                     seed=settings.seed, policy=settings.policy, sign=list(settings.sign), out=out,
                     formats=settings.formats, options=options, host=settings.host)
    except ProvscanError as exc:
        return {"verdict": "error", "reason": _one_line(str(exc)), "policy": settings.policy or "default",
                "certificate": None}
    result = getattr(res, "result", res)
    pol = result.scan.policy
    reasons = list(result.verdict.reasons)
    reason = "; ".join(reasons) if reasons else "every check the policy requires passed"
    return {"verdict": result.verdict.status, "reason": _one_line(reason),
            "policy": f"{pol.name} sha256:{pol.sha256}", "certificate": getattr(res, "certificate", None)}


def write_back(client: Any, settings: GateSettings, name: str, version: str, run_id: str,
               scan: dict[str, Any], out: Path,
               before_alias: Callable[[str, str, str], None] | None = None) -> GateOutcome:
    """Log the artifacts, tag the version, move the alias. Idempotent.

    ``before_alias(name, alias, version)`` is called just before the alias is set (the receiver
    records that it expects the resulting ``model_version_alias.created`` event).
    """
    cert = scan["certificate"]
    digest = hashlib.sha256(cert).hexdigest() if cert else None
    if out.is_dir():
        client.log_artifacts(run_id, str(out), artifact_path=ARTIFACT_DIR)
    tags = {"provscan.verdict": scan["verdict"], "provscan.policy": scan["policy"],
            "provscan.reason": scan["reason"], "provscan.run_id": run_id}
    if digest:
        tags["provscan.certificate.sha256"] = digest
        tags["provscan.certificate.uri"] = f"runs:/{run_id}/{ARTIFACT_DIR}/certificate.intoto.json"
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    client.update_run(run_id, status="FINISHED")  # set_terminated would print links on stdout
    mv = client.get_model_version(name, version)
    for key in TAGS:
        if key not in tags and key in (mv.tags or {}):
            client.delete_model_version_tag(name, version, key)
    # provscan.verdict last: once it is there, the other tags of this scan are too.
    for key, value in sorted(tags.items(), key=lambda kv: kv[0] == "provscan.verdict"):
        client.set_model_version_tag(name, version, key, value)
    with _lock_for(name):
        holder = (client.get_registered_model(name).aliases or {}).get(settings.alias)
        if scan["verdict"] == "pass":
            if holder is not None and int(holder) > int(version):
                action = "kept-newer"
            elif holder is not None and str(holder) == str(version):
                action = "unchanged"
            else:
                if before_alias is not None:
                    before_alias(name, settings.alias, version)
                client.set_registered_model_alias(name, settings.alias, version)
                action = "set"
        elif holder is not None and str(holder) == str(version):
            client.delete_registered_model_alias(name, settings.alias)
            action = "removed"
        else:
            action = "unchanged"
    return GateOutcome(name, version, scan["verdict"], scan["reason"], scan["policy"], digest, run_id,
                       action)


def gate_version(settings: GateSettings, name: str, version: str, scan_run_id: str | None = None,
                 on_run: Callable[[str], None] | None = None, scan_key: str | None = None,
                 before_alias: Callable[[str, str, str], None] | None = None) -> GateOutcome | None:
    """Scan one version and write back; None when the version no longer exists.

    Raises :class:`TransientError` when the registry failed in a way worth retrying.
    ``on_run(run_id)`` is called once the artifact run is known (the queue stores it, so that a
    retry reuses the same run); ``scan_key`` (unique per job) tags the run so that a retry finds
    it even when the process died before ``on_run`` returned.
    """
    import requests
    from mlflow.exceptions import MlflowException

    client = client_for(settings.tracking_uri)
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        if _is_missing(exc):
            return None
        raise _transient(exc) from None
    except requests.RequestException as exc:
        raise _transient(exc) from None
    tmp = Path(tempfile.mkdtemp(prefix="provscan-gate-"))
    try:
        run_id = scan_run(client, settings, name, version, scan_run_id, scan_key)
        if on_run is not None:
            on_run(run_id)
        out = tmp / "out"
        scan = run_scan(settings, name, version, out)
        return write_back(client, settings, name, version, run_id, scan, out, before_alias)
    except (MlflowException, requests.RequestException) as exc:
        if isinstance(exc, MlflowException) and _is_missing(exc):
            return None
        raise _transient(exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
