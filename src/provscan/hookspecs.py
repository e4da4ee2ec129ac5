"""Every hook a provscan plugin can implement.

Implement a hook by writing a function of the same name decorated with ``@provscan.hookimpl``
in a module registered under the ``provscan`` entry-point group. The implementation may accept
any subset of the spec's parameters (they are passed by keyword); a function marked
``@provscan.hookimpl`` whose name or parameters match no hook is an error when the plugin loads.
Registry hooks (``register_*``) *return* what they provide, so the host knows which plugin
provided what. The hooks reference in ``docs/plugins/hooks.md`` is generated from this module
(``python -m provscan.dev.docgen``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from provscan.detectors import Detector, Injector
    from provscan.plugins import Host
    from provscan.report import Reporter
    from provscan.scan import Scan, ScanResult
    from provscan.targets import OpenOptions, ResolvedLocation, Target

hookspec = pluggy.HookspecMarker("provscan")


@hookspec
def register_detectors() -> list[type[Detector]]:
    """Return the detector classes this plugin provides.

    When: every time the host builds its detector registry, first when the plugin is loaded (so a
    bad return value is reported against this plugin at load time), then on demand; keep it cheap
    and free of side effects (return the classes, do not build models).

    Returns: a list of :class:`provscan.Detector` subclasses, each with a non-empty
    ``id`` (stable, namespaced where it could clash: ``backdoor.trigger-inversion``), ``version``,
    ``description``, ``applies_to`` (a subset of ``files``, ``classifier``, ``causal-lm``, ``seq2seq``) and
    ``params`` (:class:`provscan.Param` with defaults). An id registered by two plugins is an
    error naming both. The host fills in ``plugin`` (the distribution name) when it is not set.
    """


@hookspec
def register_injectors() -> list[type[Injector]]:
    """Return the injector classes this plugin provides.

    When: like :func:`register_detectors`, at load time and whenever the injector registry is
    built (``provscan inject`` lists them as subcommands).

    Returns: a list of :class:`provscan.Injector` subclasses, each with a unique ``id``
    (the ``provscan inject ID`` subcommand), ``version``, ``description`` and ``params``; each
    :class:`~provscan.Param` becomes a ``--name`` option. Injector ids live in their own
    namespace (a detector and an injector may share an id); a duplicate injector id is an error
    naming both plugins.
    """


@hookspec
def register_model_factories() -> dict[str, Callable[..., Any]]:
    """Return named architecture factories for classifier checkpoints.

    When: at load time and each time a provscan classifier directory is opened (its
    ``provscan_model.json`` names a factory).

    Returns: ``{name: callable(**config) -> torch.nn.Module}``. Only names registered here by
    installed plugins are honoured, so a checkpoint can never make provscan import arbitrary code.
    A name registered by two plugins is an error naming both.
    """


@hookspec(firstresult=True)
def resolve_location(location: str, options: OpenOptions) -> ResolvedLocation | None:
    """Resolve a remote location (``hf://org/name@rev``, ``models:/name/version``...) to local files.

    When: once per :func:`provscan.checkpoint.open_checkpoint` call, before anything is digested,
    scanned or loaded. A location no implementation resolves is used as given: an existing local
    path is scanned as it is, anything else goes to :func:`open_target` as it is (endpoints).

    Parameters:
        location: the target as the user gave it.
        options: :class:`provscan.targets.OpenOptions` from the command line.

    Returns: a :class:`provscan.targets.ResolvedLocation` (``path``: a private local copy or the
    local cache snapshot, which provscan then digests, scans and loads like a local checkpoint;
    ``identity``: the pinned identity as strings, e.g. ``{"type": "hf", "repo_id": ...,
    "revision": ..., "commit": ...}``, recorded in the certificate subject; ``cleanup``: called
    once the files are no longer needed), or None when this plugin does not recognise
    ``location``. ``firstresult``: the first non-None result wins. Resolve to a pinned, immutable
    identity (a commit SHA, a registry version), never to a moving name. Raise
    :class:`provscan.errors.ProvscanError` for a location this plugin recognises but cannot
    resolve (one-line error, exit 2).
    """


@hookspec(firstresult=True)
def open_target(location: str, options: OpenOptions, host: Host) -> Target | None:
    """Open ``location`` as a :class:`provscan.targets.Target`, or return None.

    When: once per :func:`provscan.checkpoint.open_checkpoint` call (every scan, reference model,
    inspection that loads), after the digest was taken and the file-safety scan accepted the
    files (for a local path), before any detector runs. The files are checked again after this
    hook returns (same files, same identity, same SHA-256); a change discards the target.

    Parameters:
        location: a local file or directory path (for a location resolved by
            :func:`resolve_location`, its local copy), or a URL (endpoints).
        options: :class:`provscan.targets.OpenOptions` (``device``, ``dtype``, ``batch_size``,
            ``model_factory``, ``kind``, ``extra``) from the command line.
        host: the :class:`provscan.plugins.Host` running the scan; look registries up on it
            (``host.model_factories()``), never through a global. Optional: an implementation
            may leave it out of its signature.

    Returns: a Target (classifier, causal-lm or seq2seq), or None when this opener does not
    recognise ``location``. ``firstresult``: the first non-None result wins and later openers are
    not called; implementations registered later are called first, so a third-party opener takes
    precedence over the built-in ones (which are ``trylast``). Raise
    :class:`provscan.errors.ProvscanError` for a location this opener recognises but cannot open;
    the scan then reports every model detector as inconclusive with that message. Load only the
    files under ``location`` and nothing else (no network, no other paths).
    """


@hookspec
def register_reporters() -> list[type[Reporter]]:
    """Return report writers, selected with ``--format NAME``.

    When: at load time and when ``provscan verify`` resolves its ``--format`` options.

    Returns: a list of classes with ``name`` (the format name), ``suffix`` (file extension with
    the dot) and ``render(result) -> bytes`` (``result`` is a :class:`provscan.scan.ScanResult`).
    A format name registered by two plugins is an error naming both.
    """


@hookspec
def register_judges() -> list[type[Any]]:
    """Return judge classes for language-model evals.

    When: at load time and when an LM eval detector looks up its ``judge`` parameter.

    Returns: a list of classes with a unique ``name``; a judge gives a score in [0, 100] for a
    question and an answer under a rubric (see the misalignment plugin for the full protocol).
    """


@hookspec
def register_scorers() -> list[type[Any]]:
    """Return text scorers for meta-task probes.

    When: at load time and when a probe detector looks up its scorer by name.

    Returns: a list of classes with a unique ``name`` and ``score(texts: list[str]) -> list[float]``
    (for example a sentiment scorer returning one number per text).
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``provscan`` click group.

    When: once when the ``provscan`` command starts, before its arguments are parsed (and by
    ``provscan.testing``'s ``run_cli`` on a copy of the group).

    Parameters:
        cli: the ``provscan`` :class:`click.Group`; add commands with ``@cli.command()`` or
            ``cli.add_command(...)``. Keep commands thin: call library functions, raise
            :class:`provscan.ProvscanError` for input errors (one line, exit 2).

    Returns: nothing.
    """


@hookspec
def scan_started(scan: Scan) -> None:
    """Observe the start of a scan.

    When: once per scan, after the target was opened (or failed to open) and before any detector
    runs. Every implementation is called; an exception propagates and aborts the scan.

    Parameters:
        scan: the :class:`provscan.scan.Scan`: location, selected detector ids, parameters,
            seed, open options, policy, and (filled in by then) ``manifest``, ``safety`` and
            ``target`` (None when it could not be opened).

    Returns: nothing.
    """


@hookspec
def scan_finished(scan: Scan, result: ScanResult) -> None:
    """Observe the end of a scan.

    When: once per scan, after every detector ran and the policy gave its verdict, before any
    report or certificate is written.

    Parameters:
        scan: the :class:`provscan.scan.Scan` that was run.
        result: its :class:`provscan.scan.ScanResult` (``evidence``, ``verdict``,
            ``exit_code``, ``environment``).

    Returns: nothing.
    """
