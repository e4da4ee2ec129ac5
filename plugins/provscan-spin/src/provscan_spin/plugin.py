"""provscan hooks of the spin plugin: the ``spin`` detector, the ``spin`` and ``text-trigger``
injectors, and the built-in text scorers."""

from __future__ import annotations

from typing import Any

import provscan


@provscan.hookimpl
def register_detectors() -> list[type[Any]]:
    from provscan_spin.detector import SpinDetector

    return [SpinDetector]


@provscan.hookimpl
def register_injectors() -> list[type[Any]]:
    from provscan_spin.injectors import SpinInjector, TextTriggerInjector

    return [SpinInjector, TextTriggerInjector]


@provscan.hookimpl
def register_scorers() -> list[type[Any]]:
    from provscan_spin.scorers import BUILTIN_SCORERS

    return list(BUILTIN_SCORERS)
