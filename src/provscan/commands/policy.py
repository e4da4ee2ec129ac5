"""`provscan policy check FILE` and `provscan policy list`."""

from __future__ import annotations

import click

from provscan.cli import cli


@cli.group("policy")
def policy_group() -> None:
    """Release-gate policies (TOML)."""


@policy_group.command("check")
@click.argument("ref")
def policy_check(ref: str) -> None:
    """Validate a policy file (or builtin:NAME); exit 0 when valid, 2 with one line otherwise."""
    from provscan.plugins import get_host
    from provscan.policy import load_policy

    host = get_host()
    pol = load_policy(ref, host)
    known = host.detectors()
    missing = [d for d in pol.detectors if d not in known]
    click.echo(f"valid: policy {pol.name!r} sha256:{pol.sha256[:16]} "
               f"({len(pol.detectors)} detector rules, inconclusive={pol.inconclusive}, "
               f"unlisted={pol.unlisted}, {len(pol.plugins)} allowed plugins, {len(pol.signers)} signers)")
    for d in missing:
        click.echo(f"note: detector {d!r} is not installed here; a scan under this policy would stop")


@policy_group.command("list")
def policy_list() -> None:
    """Policies shipped by provscan and the installed plugins (use as builtin:NAME)."""
    from provscan.plugins import get_host
    from provscan.policy import builtin_policies

    shipped = builtin_policies(get_host())
    if not shipped:
        click.echo("no shipped policies")
    for name, pkgs in sorted(shipped.items()):
        for pkg in pkgs:
            click.echo(f"builtin:{pkg}/{name}")
