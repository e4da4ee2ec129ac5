"""Built-in report formats."""

from __future__ import annotations

from typing import Any

import provscan
from provscan.report import JsonReporter, TextReporter
from provscan.report.html import HtmlReporter
from provscan.report.sarif import SarifReporter


@provscan.hookimpl
def register_reporters() -> list[type[Any]]:
    return [TextReporter, JsonReporter, SarifReporter, HtmlReporter]
