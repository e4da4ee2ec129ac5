"""`provscan policy check FILE` and `provscan policy list`."""

from __future__ import annotations

import click

from provscan.cli import cli, echo_json, json_option


@cli.group("policy")
def policy_group() -> None:
    """Release-gate policies (TOML)."""


@policy_group.command("check")
@click.argument("ref")
@json_option
def policy_check(ref: str, as_json: bool) -> None:
    """Validate a policy file (or builtin:NAME) against the installed detectors.

    Exit 0 when `provscan verify --policy REF` would accept it, 2 with one line otherwise
    (malformed policy, or a required detector that is not installed). Exit codes: docs/usage.md.
    """
    from provscan.plugins import get_host
    from provscan.policy import PolicyError, load_policy

    host = get_host()
    pol = load_policy(ref, host)
    known = host.detectors()
    for d in pol.required_detectors():
        if d not in known:
            raise PolicyError(f"policy {pol.origin}: required detector {d!r} is not installed "
                              f"(known: {', '.join(sorted(known))})")
    missing = [d for d in pol.detectors if d not in known]
    if as_json:
        echo_json({"valid": True, "name": pol.name, "sha256": pol.sha256,
                   "detectors": sorted(pol.detectors), "inconclusive": pol.inconclusive,
                   "unlisted": pol.unlisted, "plugins": len(pol.plugins),
                   "signers": len(pol.signers), "not_installed": missing})
        return
    click.echo(f"valid: policy {pol.name!r} sha256:{pol.sha256[:16]} "
               f"({len(pol.detectors)} detector rules, inconclusive={pol.inconclusive}, "
               f"unlisted={pol.unlisted}, {len(pol.plugins)} allowed plugins, {len(pol.signers)} signers)")
    for d in missing:
        click.echo(f"note: optional detector {d!r} is not installed here (its rule is unused)")


@policy_group.command("list")
@json_option
def policy_list(as_json: bool) -> None:
    """Policies shipped by provscan and the installed plugins (use as builtin:NAME)."""
    from provscan.plugins import get_host
    from provscan.policy import builtin_policies

    shipped = builtin_policies(get_host())
    if as_json:
        echo_json([{"name": name, "package": pkg, "ref": f"builtin:{pkg}/{name}"}
                   for name, pkgs in sorted(shipped.items()) for pkg in pkgs])
        return
    if not shipped:
        click.echo("no shipped policies")
    for name, pkgs in sorted(shipped.items()):
        for pkg in pkgs:
            click.echo(f"builtin:{pkg}/{name}")
