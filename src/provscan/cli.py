"""The ``provscan`` command line: one click group of thin commands over library functions.

Exit codes: 0 ok / pass, 1 policy failed, 2 usage or input error, 3 inconclusive.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from provscan import __version__
from provscan.errors import EXIT_USAGE, ProvscanError


class ProvscanGroup(click.Group):
    """Turns every error into one line on stderr (a traceback only with ``-v``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except ProvscanError as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:  # noqa: BLE001 - never a traceback without -v
            if ctx.obj and ctx.obj.get("verbose"):
                raise
            msg = str(exc).splitlines()[0] if str(exc) else ""
            click.echo(f"error: {type(exc).__name__}: {msg} (run with -v for a traceback)", err=True)
            ctx.exit(EXIT_USAGE)


@click.group(cls=ProvscanGroup)
@click.version_option(__version__, prog_name="provscan")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """Model-security and provenance scanner with signed statistical certificates."""
    from provscan.progress import set_quiet

    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    set_quiet(quiet)


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True))


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


def add_target_options(f: Any) -> Any:
    for opt in reversed([
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--dtype", default="auto", show_default=True, help="auto, float32, bfloat16, float16."),
        click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1)),
        click.option("--model-factory", default=None, help="module:callable building the architecture for a plain state dict."),
    ]):
        f = opt(f)
    return f


def open_options(device: str, dtype: str, batch_size: int, model_factory: str | None) -> Any:
    from provscan.targets import OpenOptions

    return OpenOptions(device=device, dtype=dtype, batch_size=batch_size, model_factory=model_factory)


@cli.command("verify")
@click.argument("target")
@click.option("--detector", "-d", "detectors", multiple=True, help="Detector id (repeatable).")
@click.option("--param", "-p", "params", multiple=True, help="ID.KEY=VALUE (repeatable).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--format", "formats", multiple=True, default=("text",), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for reports.")
@add_target_options
def verify_cmd(target: str, detectors: tuple[str, ...], params: tuple[str, ...], seed: int,
               formats: tuple[str, ...], out: Path | None, **target_opts: Any) -> None:
    """Scan TARGET with the selected detectors and exit by the policy's verdict."""
    from provscan.params import parse_param_options
    from provscan.plugins import get_host
    from provscan.policy import Policy
    from provscan.scan import Scan, run_scan

    host = get_host()
    scan = Scan(target, list(detectors), parse_param_options(params), seed,
                open_options(**target_opts), Policy())
    reporters = host.reporters()
    for fmt in formats:
        if fmt not in reporters:
            raise ProvscanError(f"unknown format {fmt!r} (known: {', '.join(sorted(reporters))})")
    result = run_scan(host, scan)
    from provscan.fsutil import atomic_write_bytes

    for fmt in formats:
        data = reporters[fmt]().render(result)
        if out is not None:
            atomic_write_bytes(out / f"report{reporters[fmt].suffix}", data)
        elif fmt in ("text", "json"):
            sys.stdout.write(data.decode())
    sys.exit(result.exit_code)


class InjectGroup(click.Group):
    """``provscan inject ID DATA --out OUT --secret SECRET [--PARAM VALUE ...]``: one subcommand per
    registered injector, its options generated from the injector's declared parameters."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from provscan.plugins import get_host

        return sorted(get_host().injectors())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        from provscan.plugins import get_host

        cls = get_host().injectors().get(name)
        return None if cls is None else injector_command(cls)


def injector_command(cls: Any) -> click.Command:
    def run(data: Path, out: Path, secret: Path, seed: int, **values: Any) -> None:
        from provscan.detectors import detector_rng
        from provscan.params import resolve_params

        given = {k: v for k, v in values.items() if v is not None}
        resolved = resolve_params(cls.id, cls.params, given)
        if not data.exists():
            raise ProvscanError(f"no such dataset: {data}")
        if out.exists():
            raise ProvscanError(f"output {out} already exists (choose another --out)")
        if secret.exists():
            raise ProvscanError(f"secret file {secret} already exists (refusing to overwrite a key)")
        if _inside(secret, out) or _inside(secret, data):
            raise ProvscanError("the secret file must not be written inside the dataset directories")
        summary = cls().apply(data, out, secret, resolved, detector_rng(seed, cls.id))
        echo_json(summary)

    params = [
        click.Argument(["data"], type=click.Path(path_type=Path)),
        click.Option(["--out"], required=True, type=click.Path(path_type=Path), help="New dataset location."),
        click.Option(["--secret"], required=True, type=click.Path(path_type=Path), help="Where to write the secret (JSON)."),
        click.Option(["--seed"], default=0, show_default=True, type=int),
    ]
    for p in cls.params:
        ptype = {int: int, float: float, bool: str}.get(p.type, str)
        params.append(click.Option([f"--{p.name.replace('_', '-')}", p.name], type=ptype, default=None,
                                   help=f"{p.help} [default: {p.default}]"))
    return click.Command(cls.id, callback=run, params=params, help=cls.description)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return folder.is_dir() or not folder.exists()
    except ValueError:
        return False


cli.add_command(InjectGroup("inject", help="Write a modified copy of a dataset and its secret."))


def register_plugin_commands(group: click.Group) -> None:
    from provscan.plugins import get_host

    try:
        get_host().hook.register_commands(cli=group)
    except ProvscanError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def main() -> None:
    register_plugin_commands(cli)
    cli(prog_name="provscan")
