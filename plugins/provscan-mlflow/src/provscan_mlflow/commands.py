"""``provscan mlflow serve`` and ``provscan mlflow scan-all`` (thin commands over the gate)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from provscan import ProvscanError

SECRET_ENV = "PROVSCAN_MLFLOW_WEBHOOK_SECRET"


def gate_options(f: Any) -> Any:
    for opt in reversed([
        click.option("--mlflow-uri", default=None,
                     help="Tracking/registry server (default: $MLFLOW_TRACKING_URI)."),
        click.option("--sign", "sign", multiple=True, required=True,
                     help="Key that signs every certificate (name or PEM path; repeatable)."),
        click.option("--policy", default="builtin:fail-closed", show_default=True,
                     help="Policy TOML file or builtin:NAME."),
        click.option("--detector", "-d", "detectors", multiple=True, help="Extra detector id (repeatable)."),
        click.option("--param", "-p", "params", multiple=True, help="ID.KEY=VALUE (repeatable)."),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--alias", default="certified", show_default=True,
                     help="Alias set on a passing version (removed from a failing one)."),
        click.option("--experiment", default="provscan-gate", show_default=True,
                     help="Experiment whose runs hold certificates and reports."),
    ]):
        f = opt(f)
    return f


def gate_settings(mlflow_uri: str | None, sign: tuple[str, ...], policy: str, detectors: tuple[str, ...],
                  params: tuple[str, ...], seed: int, alias: str, experiment: str) -> Any:
    from provscan_mlflow.gate import GateSettings
    from provscan_mlflow.location import _ALIAS

    uri = mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise ProvscanError("no registry: pass --mlflow-uri or set MLFLOW_TRACKING_URI")
    if not _ALIAS.match(alias):
        raise ProvscanError(f"invalid alias {alias!r}")
    if not policy.startswith("builtin:") and not Path(policy).is_file():
        raise ProvscanError(f"policy file {policy} does not exist")
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root().obj if ctx is not None else None
    host = root.get("host") if isinstance(root, dict) else None  # set by provscan for plugin commands
    return GateSettings(tracking_uri=uri, sign=tuple(sign), policy=policy, detectors=tuple(detectors),
                        params=tuple(params), seed=seed, alias=alias, experiment=experiment, host=host)


def _secret(secret_file: Path | None) -> str:
    if secret_file is not None:
        secret = secret_file.read_text(encoding="utf-8").strip()
    else:
        secret = os.environ.get(SECRET_ENV, "").strip()
    if not secret:
        raise ProvscanError(f"no webhook secret: set {SECRET_ENV} or pass --secret-file")
    return secret


def _quiet_mlflow() -> None:
    """No progress bars from MLflow's downloads: stderr carries the JSON log lines."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def add_commands(cli: click.Group) -> None:
    @cli.group("mlflow")
    def mlflow_group() -> None:
        """Gate an MLflow model registry: webhook receiver and backfill."""

    @mlflow_group.command("serve")
    @gate_options
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=8610, show_default=True, type=click.IntRange(0, 65535))
    @click.option("--queue", "queue_path", type=click.Path(path_type=Path),
                  default=Path("provscan-mlflow-queue.sqlite"), show_default=True,
                  help="SQLite file holding accepted deliveries and jobs.")
    @click.option("--secret-file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
                  default=None, help=f"File with the webhook secret (default: ${SECRET_ENV}).")
    @click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
                  help="Scans running at the same time.")
    @click.option("--tolerance", default=300, show_default=True, type=click.IntRange(1, 3600),
                  help="Seconds a delivery's timestamp may differ from now.")
    @click.option("--grace", default=30.0, show_default=True, type=click.FloatRange(0),
                  help="Seconds to let running scans finish on SIGTERM before requeueing them.")
    @click.option("--max-attempts", default=5, show_default=True, type=click.IntRange(1),
                  help="Tries per job on transient registry errors.")
    @click.option("--json/--text", "as_json", default=True, show_default=True,
                  help="Log one JSON object per line on stderr, or plain text lines.")
    def serve_cmd(host: str, port: int, queue_path: Path, secret_file: Path | None, workers: int,
                  tolerance: int, grace: float, max_attempts: int, as_json: bool, **gate: Any) -> None:
        """Receive MLflow webhooks (model_version.created, model_version_alias.created), scan each
        version and write the verdict back to the registry. Runs until SIGTERM."""
        from provscan_mlflow.server import JsonLog, Receiver, ServeSettings, route_logging

        settings = ServeSettings(host=host, port=port, queue=queue_path, secret=_secret(secret_file),
                                 gate=gate_settings(**gate), workers=workers, tolerance=tolerance,
                                 grace=grace, max_attempts=max_attempts)
        _quiet_mlflow()
        # The CLI built the plugin host before this command ran, so worker threads share it.
        log = JsonLog(as_json=as_json)
        route_logging(log)
        Receiver(settings, log).serve_until_signal()

    @mlflow_group.command("scan-all")
    @click.argument("name")
    @gate_options
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per version on stdout.")
    def scan_all_cmd(name: str, as_json: bool, **gate: Any) -> None:
        """Scan every version of registered model NAME and write each verdict back (a backfill).

        Prints one line per version. Exit 0 when every version was scanned and written back
        (whatever its verdict), 2 when any could not be.
        """
        from provscan_mlflow.gate import TransientError, gate_version
        from provscan_mlflow.location import client_for

        _quiet_mlflow()
        settings = gate_settings(**gate)
        client = client_for(settings.tracking_uri)
        versions = sorted({str(mv.version) for mv in
                           client.search_model_versions(f"name = '{_quote(name)}'")}, key=int)
        if not versions:
            raise ProvscanError(f"registered model {name!r} has no versions (or does not exist)")
        errors = 0
        for version in versions:
            try:
                outcome = gate_version(settings, name, version)
                doc = outcome.as_dict() if outcome else {"name": name, "version": version, "verdict": "gone"}
            except TransientError as exc:
                doc = {"name": name, "version": version, "verdict": "error", "reason": str(exc)}
            errors += doc["verdict"] == "error"
            if as_json:
                click.echo(json.dumps(doc, sort_keys=True))
            else:
                alias = f", alias {doc['alias']}" if doc.get("alias") else ""
                click.echo(f"{name} v{version}: {doc['verdict']}{alias} - {doc.get('reason', '')}")
        sys.exit(2 if errors else 0)


def _quote(name: str) -> str:
    """A model name inside a single-quoted MLflow filter string."""
    if "'" in name:
        raise ProvscanError(f"model name {name!r} contains a quote")
    return name
