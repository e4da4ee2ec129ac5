"""Hook implementations of the provscan-misalignment plugin."""

from __future__ import annotations

from typing import Any

import provscan
from provscan_misalignment.detectors import DETECTORS
from provscan_misalignment.judges import JUDGES


@provscan.hookimpl
def register_detectors() -> list[type[Any]]:
    return list(DETECTORS)


@provscan.hookimpl
def register_judges() -> list[type[Any]]:
    return list(JUDGES)
