"""`provscan plugins` and `provscan digest`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from provscan.cli import cli, echo_json


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable output (always includes the built-ins, flagged builtin).")
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
def plugins_cmd(as_json: bool, show_all: bool) -> None:
    """List loaded plugins: distribution, version, hooks, detector and injector ids.

    Plugins that failed to load are listed with the reason (on stderr in text mode, under
    "failures" in JSON); the exit code stays 0 so that the listing is always available.
    """
    from provscan.plugins import get_host

    host = get_host()
    infos = [asdict(i) for i in host.plugin_infos(include_builtins=True)
             if show_all or as_json or not i.builtin]
    failures = [asdict(f) for f in host.failures]
    if as_json:
        echo_json({"plugins": infos, "failures": failures})
        return
    if not infos:
        click.echo("no plugins installed besides the built-ins (--all lists those)")
    for i in infos:
        tag = " (built-in)" if i["builtin"] else ""
        click.echo(f"{i['name']}{tag}  [{i['distribution']} {i['version']}]")
        click.echo(f"  hooks: {', '.join(i['hooks'])}")
        if i["detectors"]:
            click.echo(f"  detectors: {', '.join(i['detectors'])}")
        if i["injectors"]:
            click.echo(f"  injectors: {', '.join(i['injectors'])}")
    for f in failures:
        click.echo(f"FAILED {f['name']} [{f['distribution']} {f['version']}]: {f['error']}",
                   err=True)


@cli.command("digest")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable manifest.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=None,
              help="Files hashed in parallel (default: available CPUs, at most 8).")
@click.option("--format", "fmt", type=click.Choice(["provscan", "model-signing"]), default="provscan",
              show_default=True,
              help="Root digest rule: provscan's (the certificate subject) or model-signing's "
                   "(its signature's subject; git paths and model.sig left out, see docs/signing.md).")
def digest_cmd(path: Path, as_json: bool, jobs: int | None, fmt: str) -> None:
    """Per-file SHA-256 and size, and the root digest of PATH (a file or a directory).

    Text output: one line per file (sha256, size, relative path) in the order of the manifest,
    then the root digest. The per-file digests are those that ``sha256sum`` prints.
    """
    from provscan.digest import compute_manifest, model_signing_root

    m = compute_manifest(path, workers=jobs)
    if fmt == "model-signing":
        root, files = model_signing_root(m, single_file=path.is_file())
        if as_json:
            echo_json({"format": "model-signing", "name": m.name, "root_sha256": root,
                       "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
                       "ignored": sorted({f.path for f in m.files} - {f.path for f in files})})
            return
        for f in files:
            click.echo(f"{f.sha256}  {f.size:>12}  {f.path}")
        click.echo(f"model-signing root sha256:{root}  ({m.name})")
        return
    if as_json:
        echo_json(m.to_dict())
        return
    for f in m.files:
        click.echo(f"{f.sha256}  {f.size:>12}  {f.path}")
    click.echo(f"root sha256:{m.root_sha256}  ({m.name})")
