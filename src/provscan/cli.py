"""The ``provscan`` command line: one click group of thin commands over library functions.

Exit codes (docs/usage.md#exit-codes): 0 ok / pass / valid; 1 policy failed, unsafe or invalid
certificate; 2 usage error; 3 inconclusive.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from provscan import __version__
from provscan.errors import EXIT_USAGE, ProvscanError, missing_extra

if TYPE_CHECKING:
    from provscan.plugins import Host


class ProvscanGroup(click.Group):
    """Turns every error into one line on stderr (a traceback only with ``-v``).

    Plugin commands are added lazily (``lazy_plugin_commands``): built-in commands such as
    ``digest`` start without importing every plugin.
    """

    lazy_plugin_commands = False
    plugin_commands_loaded = False

    def _load_plugin_commands(self) -> None:
        if self.lazy_plugin_commands and not self.plugin_commands_loaded:
            register_plugin_commands(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None:
            self._load_plugin_commands()
            found = super().get_command(ctx, cmd_name)
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

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
            extra = missing_extra(exc)
            if extra is not None:
                click.echo(f"error: {extra}", err=True)
                ctx.exit(extra.exit_code)
            msg = str(exc).splitlines()[0] if str(exc) else ""
            click.echo(f"error: {type(exc).__name__}: {msg} (run with -v for a traceback)", err=True)
            ctx.exit(EXIT_USAGE)


@click.group(cls=ProvscanGroup)
@click.version_option(__version__, prog_name="provscan")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """Model-security and provenance scanner with signed statistical certificates.

    Exit codes, the same for every command: 0 ok (pass, safe, valid); 1 a negative answer (policy
    failed, unsafe file, invalid certificate); 2 usage error (one line, nothing written); 3
    inconclusive. Details per command: docs/usage.md#exit-codes.
    """
    from provscan.progress import set_quiet

    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    if getattr(ctx.command, "host", None) is not None:
        ctx.obj["host"] = ctx.command.host  # type: ignore[attr-defined]
    set_quiet(quiet)


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True))


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON (machine-readable) instead of text.")
"""The ``--json`` flag every command with output takes."""


def _load_commands() -> None:
    """Import the command modules (each adds its commands to ``cli``)."""
    import importlib

    for name in ("host", "verify", "fleet", "inject", "inspect", "keys", "cert", "policy"):
        importlib.import_module(f"provscan.commands.{name}")


def command_host(ctx: click.Context | None = None) -> Host:
    """The host the running command works with.

    It is the host whose plugins added their commands to the group (``ctx.obj["host"]``, which is
    also how a plugin's command gets it), else the process host.
    """
    from provscan.plugins import get_host

    ctx = ctx or click.get_current_context(silent=True)
    host = ctx.find_root().obj.get("host") if ctx is not None and ctx.find_root().obj else None
    return host if host is not None else get_host()


def register_plugin_commands(group: click.Group) -> None:
    """Let every plugin add its commands to ``group`` (once per group)."""
    from provscan.plugins import get_host

    if getattr(group, "plugin_commands_loaded", False):
        return
    group.plugin_commands_loaded = True  # type: ignore[attr-defined]
    host = get_host()
    group.host = host  # type: ignore[attr-defined]
    try:
        host.hook.register_commands(cli=group)
    except ProvscanError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def main() -> None:
    cli.lazy_plugin_commands = True  # type: ignore[attr-defined]
    cli(prog_name="provscan")


_load_commands()
