"""`provscan cert verify CERT --pubkey PUB [--checkpoint PATH]` and `provscan cert show CERT`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from provscan.cli import cli, echo_json, json_option
from provscan.errors import ProvscanError


@cli.group("cert")
def cert_group() -> None:
    """Verify and inspect signed certificates (DSSE envelopes)."""


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ProvscanError(f"cannot read certificate {path}: {exc.strerror}") from None


@cert_group.command("verify")
@click.argument("cert", type=click.Path(path_type=Path))
@click.option("--pubkey", "pubkeys", multiple=True, required=True,
              help="Trusted public key (PEM path or key name; repeatable).")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Recompute this checkpoint's digest and compare it with the subject.")
@click.option("--policy", default=None, help="Policy whose [signers] must all have signed.")
@json_option
def cert_verify(cert: Path, pubkeys: tuple[str, ...], checkpoint: Path | None, policy: str | None,
                as_json: bool) -> None:
    """Verify CERT's signatures, schema and (with --checkpoint) its subject digest.

    Exit 0 when CERT is valid; 1 when it is not, with one line naming the failed check (a file
    that is not a DSSE envelope fails the "envelope" check); 2 for a usage error (CERT, a key,
    the policy or the checkpoint cannot be found or read). Exit codes: docs/usage.md.
    """
    from provscan.certificate import CertificateError, check_checkpoint, verify_envelope
    from provscan.keys import load_public_key
    from provscan.policy import load_policy

    keys = [load_public_key(p) for p in pubkeys]
    signers = load_policy(policy).signers if policy else []
    if checkpoint is not None and not checkpoint.exists():
        raise ProvscanError(f"no such checkpoint: {checkpoint}")
    data = _read(cert)
    try:
        verified = verify_envelope(data, keys, signers)
        if checkpoint is not None:
            check_checkpoint(verified.statement, checkpoint)
    except CertificateError as exc:
        if as_json:
            echo_json({"valid": False, "check": exc.check, "error": str(exc)})
        else:
            click.echo(f"invalid: {exc}", err=True)
        sys.exit(1)
    subject = verified.statement["subject"][0]
    checks = ["signature", "schema"] + (["checkpoint digest"] if checkpoint is not None else [])
    if as_json:
        echo_json({"valid": True, "subject": subject, "checks": checks,
                   "verdict": verified.predicate["verdict"]["status"],
                   "keyids": list(verified.keyids)})
        return
    what = ", ".join(checks)
    click.echo(f"valid: {subject['name']} sha256:{subject['digest']['sha256']} "
               f"verdict {verified.predicate['verdict']['status']} ({what} checked; "
               f"signed by {', '.join(k[:16] for k in verified.keyids)})")


@cert_group.command("show")
@click.argument("cert", type=click.Path(path_type=Path))
@json_option
def cert_show(cert: Path, as_json: bool) -> None:
    """Summarise CERT's claims WITHOUT verifying its signature (use `cert verify` for that)."""
    import base64
    import binascii
    import json

    try:
        env = json.loads(_read(cert))
        statement = json.loads(base64.b64decode(env["payload"], validate=True))
        pred, subject = statement["predicate"], statement["subject"][0]
    except (ValueError, KeyError, TypeError, IndexError, binascii.Error):
        raise ProvscanError(f"{cert}: not a provscan certificate") from None
    if as_json:
        echo_json(statement)
        return
    try:
        click.echo("UNVERIFIED (run `provscan cert verify` to check the signature)")
        click.echo(f"subject: {subject['name']}  sha256:{subject['digest'].get('sha256')}")
        click.echo(f"target:  {pred['target']['location']} ({pred['target']['kind']}, {pred['target']['format']})")
        click.echo(f"policy:  {pred['policy']['name']} sha256:{pred['policy']['sha256'][:16]}")
        click.echo(f"verdict: {pred['verdict']['status']} (exit {pred['verdict']['exitCode']})")
        click.echo(f"time:    {pred['startedOn']} -> {pred['finishedOn']}  seed {pred['seed']}")
        click.echo(f"signatures: {', '.join(s.get('keyid', '?')[:16] for s in env['signatures'])}")
        for c in pred["claims"]:
            p = "" if c["pValue"] is None else f" p={c['pValue']:.3g}"
            mark = "*" if c["judged"] else " "
            click.echo(f" {mark}{c['detector']}/{c['claim']}: {c['decision']}{p} alpha={c['alpha']} "
                       f"n={c['n']} [{c['test']}]")
            click.echo(f"    H0: {c['nullHypothesis']}")
        for e in pred["errors"]:
            click.echo(f"  error: {e['detector']}: {e['error']}")
    except (KeyError, TypeError) as exc:
        raise ProvscanError(f"{cert}: malformed predicate (missing {exc})") from None
