"""`provscan plugins` and `provscan digest`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from provscan.cli import cli, echo_json


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
def plugins_cmd(as_json: bool, show_all: bool) -> None:
    """List loaded plugins, their hooks and the detectors and injectors they register."""
    from provscan.plugins import get_host

    host = get_host()
    infos = [asdict(i) for i in host.plugin_infos(include_builtins=True) if show_all or as_json or not i.builtin]
    failures = [asdict(f) for f in host.failures]
    if as_json:
        echo_json({"plugins": infos, "failures": failures})
        return
    for i in infos:
        tag = " (built-in)" if i["builtin"] else ""
        click.echo(f"{i['name']}{tag}  [{i['distribution']} {i['version']}]")
        click.echo(f"  hooks: {', '.join(i['hooks'])}")
        if i["detectors"]:
            click.echo(f"  detectors: {', '.join(i['detectors'])}")
        if i["injectors"]:
            click.echo(f"  injectors: {', '.join(i['injectors'])}")
    for f in failures:
        click.echo(f"FAILED {f['name']} [{f['distribution']} {f['version']}]: {f['error']}", err=True)


@cli.command("digest")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def digest_cmd(path: Path, as_json: bool) -> None:
    """Per-file SHA-256 and size, and the root digest of PATH."""
    from provscan.digest import compute_manifest

    m = compute_manifest(path)
    if as_json:
        echo_json(m.to_dict())
        return
    for f in m.files:
        click.echo(f"{f.sha256}  {f.size:>12}  {f.path}")
    click.echo(f"root sha256:{m.root_sha256}  ({m.name})")


