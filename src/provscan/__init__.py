"""provscan: model-security and provenance scanner.

Plugins implement hooks marked with :data:`hookimpl`; see :mod:`provscan.hookspecs`.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

hookimpl = pluggy.HookimplMarker("provscan")
"""Decorator for plugin hook implementations (``@provscan.hookimpl``)."""

try:
    __version__ = version("provscan")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["hookimpl", "__version__"]
