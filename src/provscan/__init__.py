"""provscan: model-security and provenance scanner.

The names in :data:`__all__` are the public API that plugins and scripts may rely on; breaking any
of them is a major version (see docs/plugins/index.md). Everything else under ``provscan`` is
internal. Names are imported lazily on first use, so ``import provscan`` stays light (no torch,
transformers or scipy).

Plugins implement hooks marked with :data:`hookimpl`; see :mod:`provscan.hookspecs`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import pluggy

# Eager, and light: the submodule ``provscan.progress`` would otherwise shadow the function.
from provscan.progress import progress

hookimpl = pluggy.HookimplMarker("provscan")
"""Decorator for plugin hook implementations (``@provscan.hookimpl``)."""

try:
    __version__ = version("provscan")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

# public name -> the module that defines it (imported on first access)
_NAMES: dict[str, str] = {
    "Detector": "provscan.detectors",
    "Injector": "provscan.detectors",
    "detector_rng": "provscan.detectors",
    "Param": "provscan.params",
    "resolve_params": "provscan.params",
    "Evidence": "provscan.evidence",
    "Claim": "provscan.evidence",
    "Decision": "provscan.evidence",
    "Bound": "provscan.evidence",
    "Target": "provscan.targets.base",
    "FilesTarget": "provscan.targets.base",
    "ClassifierTarget": "provscan.targets.base",
    "LMTarget": "provscan.targets.base",
    "TextClassifierTarget": "provscan.targets.base",
    "EncoderTarget": "provscan.targets.base",
    "OpenOptions": "provscan.targets.base",
    "ResolvedLocation": "provscan.targets.base",
    "resolve_device": "provscan.targets.base",
    "resolve_dtype": "provscan.targets.base",
    "ProvscanError": "provscan.errors",
    "UnsafeCheckpointError": "provscan.errors",
    "verify": "provscan.api",
    "open_checkpoint": "provscan.checkpoint",
    "compute_manifest": "provscan.digest",
    "file_ref": "provscan.digest",
    "save_classifier": "provscan.classifier_card",
    "new_key": "provscan.keys",
    "atomic_write_bytes": "provscan.fsutil",
    "atomic_write_text": "provscan.fsutil",
    "atomic_dir": "provscan.fsutil",
    "target_options": "provscan.cli_options",
    "options_from_cli": "provscan.cli_options",
    "command_host": "provscan.cli",
}

# public submodule attribute -> module
_MODULES: dict[str, str] = {
    "stats": "provscan.stats",
    "datasets": "provscan.datasets",
    "training": "provscan.training",
    "svg": "provscan.report.svg",
}

__all__ = [
    "__version__",
    "hookimpl",
    # contracts
    "Detector", "Injector", "Param", "Evidence", "Claim", "Decision", "Bound",
    # targets
    "Target", "FilesTarget", "ClassifierTarget", "LMTarget", "TextClassifierTarget", "EncoderTarget",
    "OpenOptions",
    "ResolvedLocation",
    "resolve_device", "resolve_dtype", "target_options", "options_from_cli",
    "command_host",
    # errors
    "ProvscanError", "UnsafeCheckpointError",
    # running and helpers
    "verify", "open_checkpoint", "compute_manifest", "file_ref", "save_classifier", "new_key", "detector_rng", "resolve_params",
    "progress", "atomic_write_bytes", "atomic_write_text", "atomic_dir",
    # submodules
    "stats", "datasets", "training", "svg",
]

if TYPE_CHECKING:
    from provscan import datasets, stats, training
    from provscan.api import verify
    from provscan.checkpoint import open_checkpoint
    from provscan.classifier_card import save_classifier
    from provscan.cli import command_host
    from provscan.cli_options import options_from_cli, target_options
    from provscan.detectors import Detector, Injector, detector_rng
    from provscan.digest import compute_manifest, file_ref
    from provscan.errors import ProvscanError, UnsafeCheckpointError
    from provscan.evidence import Bound, Claim, Decision, Evidence
    from provscan.fsutil import atomic_dir, atomic_write_bytes, atomic_write_text
    from provscan.keys import new_key
    from provscan.params import Param, resolve_params
    from provscan.report import svg
    from provscan.targets.base import (
        ClassifierTarget,
        EncoderTarget,
        FilesTarget,
        LMTarget,
        OpenOptions,
        ResolvedLocation,
        Target,
        TextClassifierTarget,
        resolve_device,
        resolve_dtype,
    )


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        value: Any = importlib.import_module(_MODULES[name])
    elif name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'provscan' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
