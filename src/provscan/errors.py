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


#: Top-level modules that only the ``models`` extra installs, and the pip line that brings them.
MODELS_EXTRA_MODULES = frozenset({"torch", "transformers", "tokenizers", "scipy", "sklearn", "PIL"})
MODELS_EXTRA_INSTALL = "pip install 'provscan[models]'"


class MissingExtraError(ProvscanError):
    """Something needs a library of an optional extra that is not installed (exit 2)."""


def missing_extra(exc: BaseException) -> MissingExtraError | None:
    """A :class:`MissingExtraError` naming the extra when ``exc`` is the import of a module of the
    ``models`` extra that is not installed; None for any other exception."""
    if not isinstance(exc, ModuleNotFoundError):
        return None
    root = (exc.name or "").split(".")[0]
    if root not in MODELS_EXTRA_MODULES:
        return None
    return MissingExtraError(f"{root} is not installed (models need the models extra: "
                             f"{MODELS_EXTRA_INSTALL})")
