"""`provscan verify` and the shared target options."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from provscan.cli import cli
from provscan.errors import ProvscanError


def add_target_options(f: Any) -> Any:
    for opt in reversed([
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--dtype", default="auto", show_default=True, help="auto, float32, bfloat16, float16."),
        click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1)),
        click.option("--model-factory", default=None, help="module:callable building the architecture for a plain state dict."),
    ]):
        f = opt(f)
    return f


def open_options(device: str, dtype: str, batch_size: int, model_factory: str | None) -> Any:
    from provscan.targets import OpenOptions

    return OpenOptions(device=device, dtype=dtype, batch_size=batch_size, model_factory=model_factory)


@cli.command("verify")
@click.argument("target")
@click.option("--detector", "-d", "detectors", multiple=True, help="Detector id (repeatable).")
@click.option("--param", "-p", "params", multiple=True, help="ID.KEY=VALUE (repeatable).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--format", "formats", multiple=True, default=("text",), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for reports.")
@add_target_options
def verify_cmd(target: str, detectors: tuple[str, ...], params: tuple[str, ...], seed: int,
               formats: tuple[str, ...], out: Path | None, **target_opts: Any) -> None:
    """Scan TARGET with the selected detectors and exit by the policy's verdict."""
    from provscan.params import parse_param_options
    from provscan.plugins import get_host
    from provscan.policy import Policy
    from provscan.scan import Scan, run_scan

    host = get_host()
    scan = Scan(target, list(detectors), parse_param_options(params), seed,
                open_options(**target_opts), Policy())
    reporters = host.reporters()
    for fmt in formats:
        if fmt not in reporters:
            raise ProvscanError(f"unknown format {fmt!r} (known: {', '.join(sorted(reporters))})")
    result = run_scan(host, scan)
    from provscan.fsutil import atomic_write_bytes

    for fmt in formats:
        data = reporters[fmt]().render(result)
        if out is not None:
            atomic_write_bytes(out / f"report{reporters[fmt].suffix}", data)
        elif fmt in ("text", "json"):
            sys.stdout.write(data.decode())
    sys.exit(result.exit_code)


