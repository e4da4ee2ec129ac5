"""provscan hook implementations: the injectors and the ``provscan poison`` commands."""

from __future__ import annotations

from typing import Any

import click

import provscan
from provscan_poison.injectors import INJECTORS


@provscan.hookimpl
def register_injectors() -> list[type[Any]]:
    return list(INJECTORS)


@provscan.hookimpl
def register_commands(cli: click.Group) -> None:
    from provscan_poison.commands import poison

    cli.add_command(poison)
