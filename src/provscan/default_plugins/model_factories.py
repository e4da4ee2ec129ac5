"""Built-in model factories (see :mod:`provscan.architectures`)."""

from __future__ import annotations

from typing import Any

import provscan
from provscan.architectures import FACTORIES


@provscan.hookimpl
def register_model_factories() -> dict[str, Any]:
    return dict(FACTORIES)
