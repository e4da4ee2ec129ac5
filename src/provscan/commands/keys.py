"""`provscan keys new NAME` and `provscan keys list`."""

from __future__ import annotations

import os
import sys

import click

from provscan.cli import cli, echo_json, json_option


@cli.group("keys")
def keys_group() -> None:
    """Signing keys (Ed25519 or ECDSA P-256) in $PROVSCAN_HOME/keys (default ~/.provscan/keys)."""


@keys_group.command("new")
@click.argument("name")
@click.option("--passphrase/--no-passphrase", "ask", default=None,
              help="Encrypt the private key. Default: encrypt when PROVSCAN_KEY_PASSPHRASE is set "
                   "or when asked on a terminal.")
@click.option("--type", "key_type", type=click.Choice(["ed25519", "ecdsa-p256"]), default="ed25519",
              show_default=True,
              help="Key type. ecdsa-p256 also signs and verifies model-signing signatures.")
@json_option
def keys_new(name: str, ask: bool | None, key_type: str, as_json: bool) -> None:
    """Create key pair NAME (NAME.key mode 0600, NAME.pub) and print its key id."""
    from provscan.errors import ProvscanError
    from provscan.keys import PASSPHRASE_ENV, new_key

    passphrase = os.environ.get(PASSPHRASE_ENV) or None
    if ask and passphrase is None:
        if not sys.stdin.isatty():
            raise ProvscanError(f"--passphrase needs a terminal or {PASSPHRASE_ENV}")
        passphrase = click.prompt("passphrase", hide_input=True, confirmation_prompt=True, err=True)
    if ask is False:
        passphrase = None
    info = new_key(name, passphrase, type=key_type)
    if as_json:
        echo_json({"name": info.name, "keyid": info.keyid, "type": info.type,
                   "encrypted": info.encrypted, "private": str(info.private),
                   "public": str(info.public)})
        return
    click.echo(f"{info.name}  keyid {info.keyid}  {'encrypted' if info.encrypted else 'unencrypted'}"
               f"  {info.type}")
    click.echo(f"private: {info.private}\npublic:  {info.public}")


@keys_group.command("list")
@json_option
def keys_list(as_json: bool) -> None:
    """List key pairs with their key ids.

    A malformed pair (unreadable public key, private key without its public key, or a private key
    that does not match) is listed with the reason (on stderr in text mode, under "error" in
    JSON); the exit code stays 0 so that the listing is always available.
    """
    from provscan.keys import key_dir, list_keys

    infos = list_keys()
    if as_json:
        echo_json([{"name": i.name, "keyid": i.keyid or None, "type": i.type,
                    "encrypted": i.encrypted, "public": str(i.public), "error": i.error}
                   for i in infos])
        return
    if not infos:
        click.echo(f"no keys in {key_dir()}")
    for i in infos:
        if i.error is not None:
            click.echo(f"{i.name:<20} MALFORMED: {i.error}", err=True)
        else:
            click.echo(f"{i.name:<20} {i.keyid}  {'encrypted' if i.encrypted else 'unencrypted'}  "
                       f"{i.type}")
