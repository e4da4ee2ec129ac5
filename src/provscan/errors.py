"""Errors that the CLI turns into one line and an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_POLICY_FAILED = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3


class ProvscanError(Exception):
    """A problem with the user's input: the CLI prints the message on one line and exits 2."""

    exit_code = EXIT_USAGE


class UnsafeCheckpointError(ProvscanError):
    """The checkpoint was refused by the file-safety scan; nothing from it was loaded."""


class PluginError(ProvscanError):
    """A plugin failed to load or registered something invalid."""
