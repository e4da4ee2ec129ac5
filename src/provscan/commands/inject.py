"""`provscan inject ID ...`: one subcommand per registered injector."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from provscan.cli import cli, echo_json
from provscan.errors import ProvscanError


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
    def run(data: Path, out: Path, secret: Path, seed: int, as_json: bool, **values: Any) -> None:
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
        if as_json:
            echo_json(summary)
        else:
            for key, value in sorted(summary.items()):
                click.echo(f"{key}: {value}")

    params = [
        click.Argument(["data"], type=click.Path(path_type=Path)),
        click.Option(["--out"], required=True, type=click.Path(path_type=Path), help="New dataset location."),
        click.Option(["--secret"], required=True, type=click.Path(path_type=Path), help="Where to write the secret (JSON)."),
        click.Option(["--seed"], default=0, show_default=True, type=int),
        click.Option(["--json", "as_json"], is_flag=True, help="Print the summary as JSON."),
    ]
    for p in cls.params:
        ptype = {int: int, float: float, bool: str}.get(p.type, str)
        params.append(click.Option([f"--{p.name.replace('_', '-')}", p.name], type=ptype, default=None,
                                   help=_option_help(p)))
    return click.Command(cls.id, callback=run, params=params, help=cls.description)


def _option_help(p: Any) -> str:
    extra = [f"range: {p.range_text()}"] if p.range_text() else []
    return f"{p.help} [default: {p.default}{''.join('; ' + e for e in extra)}]"


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return folder.is_dir() or not folder.exists()
    except ValueError:
        return False


cli.add_command(InjectGroup("inject", help="Write a modified copy of a dataset and its secret."))


