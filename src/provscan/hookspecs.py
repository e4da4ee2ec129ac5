"""Every hook a provscan plugin can implement.

Implement a hook by writing a function of the same name decorated with ``@provscan.hookimpl``
in a module registered under the ``provscan`` entry-point group. Registry hooks *return* what
they provide, so the host knows which plugin provided what. The hooks reference in
``docs/plugins/hooks.md`` is generated from this module (``python -m provscan.docgen``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from provscan.detectors import Detector, Injector
    from provscan.report import Reporter
    from provscan.scan import Scan, ScanResult
    from provscan.targets import OpenOptions, Target

hookspec = pluggy.HookspecMarker("provscan")


@hookspec
def register_detectors() -> list[type[Detector]]:
    """Return the detector classes this plugin provides.

    Called once when the plugin manager is built. Each class subclasses
    :class:`provscan.detectors.Detector` and has a unique ``id``; a duplicate id across plugins is
    an error naming both plugins.
    """


@hookspec
def register_injectors() -> list[type[Injector]]:
    """Return the injector classes this plugin provides.

    Called once when the plugin manager is built. Each class subclasses
    :class:`provscan.detectors.Injector` and has a unique ``id`` (``provscan inject ID``).
    """


@hookspec
def register_model_factories() -> dict[str, Callable[..., Any]]:
    """Return named architecture factories: ``{name: callable(**config) -> torch.nn.Module}``.

    A checkpoint may name a factory in its ``provscan_model.json``; only names registered here by
    installed plugins are honoured, so a checkpoint can never make provscan import arbitrary code.
    """


@hookspec(firstresult=True)
def open_target(location: str, options: OpenOptions) -> Target | None:
    """Open ``location`` (a path or URL) as a :class:`provscan.targets.Target`, or return None.

    Called after the file-safety scan has accepted the files. The first non-None result wins
    (``firstresult``); plugins registered later are asked first, so a third-party opener can take
    precedence over the built-in ones. Raise :class:`provscan.errors.ProvscanError` for a location
    this opener recognises but cannot open.
    """


@hookspec
def register_reporters() -> list[type[Reporter]]:
    """Return report writers (``--format NAME``): classes with ``name``, ``suffix`` and
    ``render(result) -> bytes``."""


@hookspec
def register_judges() -> list[type[Any]]:
    """Return judge classes for language-model evals (a score in [0, 100] for a question and an
    answer under a rubric). See :mod:`provscan_misalignment` for the protocol."""


@hookspec
def register_scorers() -> list[type[Any]]:
    """Return text scorers for meta-task probes (for example a sentiment scorer returning a
    number per text). Each has ``name`` and ``score(texts) -> list[float]``."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``provscan`` click group. Called once when the CLI starts."""


@hookspec
def scan_started(scan: Scan) -> None:
    """Called when a scan starts, after the target was opened and before any detector runs."""


@hookspec
def scan_finished(scan: Scan, result: ScanResult) -> None:
    """Called when a scan finished, with its result (evidence, verdict), before reports are written."""
