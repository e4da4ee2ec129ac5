"""provscan hook implementations: the backdoor detectors and ``provscan backdoor`` commands."""

from __future__ import annotations

from typing import Any

import click

import provscan
from provscan_backdoor.detectors import DETECTORS


@provscan.hookimpl
def register_detectors() -> list[type[Any]]:
    return list(DETECTORS)


@provscan.hookimpl
def register_commands(cli: click.Group) -> None:
    from provscan_backdoor.commands import backdoor

    cli.add_command(backdoor)
