"""`provscan verify-many SOURCE --out DIR --sign KEY`: scan a fleet of targets."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from provscan.cli import cli, echo_json
from provscan.cli_options import options_from_cli, target_options


@cli.command("verify-many")
@click.argument("source", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Fleet directory (created; re-running into it resumes).")
@click.option("--sign", "sign", required=True,
              help="Key that signs every certificate (name in the key directory or PEM path).")
@click.option("--detector", "-d", "detectors", multiple=True, help="Detector id for every target (repeatable).")
@click.option("--param", "-p", "params", multiple=True, help="ID.KEY=VALUE for every target (repeatable).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--policy", default=None, help="Policy TOML file or builtin:NAME for every target.")
@click.option("--format", "formats", multiple=True, default=("html",), show_default=True,
              help="Extra per-target report format (json and sarif are always written; repeatable).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--jobs", "-j", type=click.IntRange(1), default=None,
              help="Worker processes for --engine local [default: the CPU count].")
@click.option("--address", default=None, help="Ray cluster address for --engine ray [default: RAY_ADDRESS or a local Ray].")
@click.option("--max-retries", type=click.IntRange(0), default=3, show_default=True,
              help="Tries again for a target whose worker process or node was lost.")
@click.option("--force", is_flag=True, help="Rescan every target, even those with a valid cached result.")
@click.option("--plugin", "plugins", multiple=True,
              help="Import this module and register it as a plugin in the driver and every worker (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the fleet result as JSON on stdout (counts, exit code, one row per target).")
@target_options
def verify_many_cmd(source: Path, out: Path, sign: str, detectors: tuple[str, ...],
                    params: tuple[str, ...], seed: int, policy: str | None, formats: tuple[str, ...],
                    engine: str, jobs: int | None, address: str | None, max_retries: int, force: bool,
                    plugins: tuple[str, ...], quiet: bool, as_json: bool,
                    **target_opts: Any) -> None:
    """Scan every target listed in SOURCE; one signed certificate and reports per target.

    SOURCE is a text file with one target per line (path, endpoint URL, hf:// or models:/ where a
    resolver plugin supports it) or a JSONL manifest with per-target overrides (see docs/fleet.md).
    Targets whose certificate for the same result key exists and verifies are skipped.

    Exit code: that of the worst target, in the order fail (1) > error (2) > inconclusive (3) >
    pass (0); 2 also for a usage error before any target runs; 130 on Ctrl-C.
    """
    from provscan.commands.verify import _prompt
    from provscan.fleet import HostSpec, LocalEngine, RayEngine, run_fleet
    from provscan.fleet.job import host_for
    from provscan.fleet.run import print_progress
    from provscan.params import parse_param_options
    from provscan.plugins import get_host

    spec = HostSpec(load_entry_points=True, modules=tuple(plugins))
    host = host_for(spec) if plugins else get_host()
    eng: Any = (RayEngine(address, max_retries) if engine == "ray"
                else LocalEngine(jobs, max_retries))
    show = not quiet and not os.environ.get("PROVSCAN_QUIET")
    result = run_fleet(source, out, sign, engine=eng, host=host, detectors=detectors,
                       params=parse_param_options(list(params)), seed=seed, policy=policy,
                       options=options_from_cli(**target_opts), formats=formats, force=force,
                       host_spec=spec, prompt=_prompt(), progress=print_progress() if show else None)
    c = result.counts
    if as_json:
        echo_json({"total": result.total, "counts": c, "cached": result.cached,
                   "scanned": result.scanned, "exit_code": result.exit_code, "targets": result.rows})
    if not quiet:
        click.echo(f"{result.total} targets: " + ", ".join(f"{c[s]} {s}" for s in c)
                   + f" ({result.cached} cached, {result.scanned} scanned); summary in {out}", err=True)
    sys.exit(result.exit_code)
