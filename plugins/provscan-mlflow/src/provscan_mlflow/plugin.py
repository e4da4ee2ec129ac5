"""provscan hooks of the MLflow plugin: ``models:/`` locations and the ``provscan mlflow`` commands."""

from __future__ import annotations

from typing import Any

import provscan


@provscan.hookimpl
def resolve_location(location: str, options: Any) -> Any:
    """``models:/NAME/VERSION`` and ``models:/NAME@ALIAS`` → a private copy and the pinned version."""
    from provscan_mlflow.location import is_models_uri, resolve

    if not is_models_uri(location):
        return None
    return resolve(location, options)


@provscan.hookimpl
def register_commands(cli: Any) -> None:
    from provscan_mlflow.commands import add_commands

    add_commands(cli)
