"""`provscan verify` and the shared target options."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from provscan.cli import cli
from provscan.cli_options import options_from_cli, target_options
from provscan.errors import ProvscanError

add_target_options = target_options  # the shared options, also used by verify-many
open_options = options_from_cli


@cli.command("verify")
@click.argument("target")
@click.option("--detector", "-d", "detectors", multiple=True, help="Detector id (repeatable).")
@click.option("--param", "-p", "params", multiple=True, help="ID.KEY=VALUE (repeatable).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--policy", "policy", default=None,
              help="Policy TOML file, or builtin:NAME for a policy shipped by provscan or a plugin.")
@click.option("--sign", "sign", multiple=True,
              help="Sign the certificate with this key (name in the key directory or PEM path; repeatable).")
@click.option("--format", "formats", multiple=True, default=("text",), show_default=True,
              help="Report format: text, json, sarif, html (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Directory for the certificate and reports (must not exist, or be empty).")
@click.option("--quiet", is_flag=True, help="No progress bars and no report on stdout (for CI).")
@click.option("--json", "as_json", is_flag=True,
              help="Shorthand for --format json in place of the text report.")
@add_target_options
def verify_cmd(target: str, detectors: tuple[str, ...], params: tuple[str, ...], seed: int,
               policy: str | None, sign: tuple[str, ...], formats: tuple[str, ...], out: Path | None,
               quiet: bool, as_json: bool, **target_opts: Any) -> None:
    """Scan TARGET with the selected detectors and exit by the policy's verdict.

    Exit codes: 0 pass, 1 policy failed, 2 usage error, 3 inconclusive (docs/usage.md#exit-codes).
    """
    from provscan.api import verify
    from provscan.progress import set_quiet
    from provscan.report import TextReporter, stream_supports_color

    if quiet:
        set_quiet(True)
    if as_json:
        formats = tuple(f for f in formats if f not in ("text", "json")) + ("json",)
    if out is None and len(set(formats)) > 1:
        raise ProvscanError("several --format values need --out DIR")
    result = verify(target, detectors=detectors, params=params, seed=seed, policy=policy,
                    sign=sign or None, out=out, formats=formats, options=open_options(**target_opts),
                    prompt=_prompt())
    if out is None and not quiet:
        for fmt, data in result.rendered.items():
            if fmt == "text" and stream_supports_color(sys.stdout):
                data = TextReporter(color=True).render(result)
            sys.stdout.write(data.decode("utf-8"))
    elif not quiet:
        for path in result.outputs.values():
            click.echo(f"wrote {path}", err=True)
        click.echo(f"verdict: {result.verdict.status} (exit {result.exit_code})", err=True)
    sys.exit(result.exit_code)


def _prompt() -> Any:
    """A hidden passphrase prompt when stdin is a terminal, else None."""
    if not sys.stdin.isatty():
        return None
    return lambda message: click.prompt(message, hide_input=True, err=True)
