"""Built-in report formats."""

from __future__ import annotations

from typing import Any

import provscan
from provscan.report import JsonReporter, TextReporter


@provscan.hookimpl
def register_reporters() -> list[type[Any]]:
    return [TextReporter, JsonReporter]
