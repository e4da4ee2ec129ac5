"""provscan hooks of the taggants plugin: the detector, the injector and ``provscan demo``."""

from __future__ import annotations

from typing import Any

import provscan
from provscan import ProvscanError
from provscan_taggants.detector import TaggantsDetector, check_compatible
from provscan_taggants.injector import TaggantsInjector
from provscan_taggants.secret import read_secret


@provscan.hookimpl
def register_detectors() -> list[type]:
    return [TaggantsDetector]


@provscan.hookimpl
def register_injectors() -> list[type]:
    return [TaggantsInjector]


@provscan.hookimpl
def register_commands(cli: Any) -> None:
    from provscan_taggants.demo import demo_command

    if "demo" not in cli.commands:
        cli.add_command(demo_command)


@provscan.hookimpl
def scan_started(scan: Any) -> None:
    """Refuse a taggants scan up front (exit 2) when the secret is missing or does not fit the
    model, instead of reporting an inconclusive result after loading everything."""
    if TaggantsDetector.id not in scan.detector_ids:
        return
    raw = (scan.params.get(TaggantsDetector.id) or {}).get("secret")
    if not raw:
        raise ProvscanError("the taggants detector needs --param taggants.secret=SECRET")
    secret = read_secret(raw)
    if scan.target is not None:
        check_compatible(secret, scan.target)
