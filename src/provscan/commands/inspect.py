"""`provscan inspect PATH [--json]`: what provscan sees in a checkpoint, without loading it.

Per file: format, safety verdict and findings, tensors summary (count, dtypes, bytes, parameter
count) read from safetensors headers or from the static pickle analysis; for the whole path: the
target kind (from ``provscan_model.json`` / ``config.json`` read as JSON, never imported) and the
safety verdict. Exit codes: 0 safe, 1 unsafe, 3 inconclusive, 2 bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from provscan.cli import cli, echo_json
from provscan.errors import EXIT_INCONCLUSIVE, EXIT_OK, EXIT_POLICY_FAILED

EXIT_BY_VERDICT = {"safe": EXIT_OK, "unsafe": EXIT_POLICY_FAILED, "inconclusive": EXIT_INCONCLUSIVE}


def guess_kind(path: Path) -> str:
    """Target kind from metadata files read as JSON (nothing from the checkpoint runs)."""
    from provscan.classifier_card import MODEL_CARD
    from provscan.default_plugins.loaders import TORCH_SUFFIXES, hf_dir_kind

    if path.is_dir():
        if (path / MODEL_CARD).is_file():
            return "classifier"
        if (path / "config.json").is_file():
            return hf_dir_kind(path)
        return "unknown"
    if path.suffix.lower() in TORCH_SUFFIXES or path.suffix == ".safetensors":
        return "state-dict (open with --model-factory)"
    return "unknown"


def inspect_path(path: Path, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """The inspection report as a JSON-serialisable dict (the ``--json`` output)."""
    from provscan.checkpoint import check_ignorable
    from provscan.safety import scan_path

    check_ignorable(path, ignore)
    report = scan_path(path, ignore)
    files = []
    totals = {"tensors": 0, "parameters": 0, "bytes": 0}
    dtypes: dict[str, int] = {}
    for f in report.files:
        entry: dict[str, Any] = {"path": f.path, "format": f.format, "verdict": f.verdict.value, "findings": f.findings}
        if "tensors" in f.info:
            entry["tensors"] = {k: f.info[k] for k in ("tensors", "parameters", "dtypes", "bytes")}
            for k in totals:
                totals[k] += int(f.info[k])
            for d, n in f.info["dtypes"].items():
                dtypes[d] = dtypes.get(d, 0) + n
        if "globals" in f.info:
            entry["pickle_globals"] = f.info["globals"]
        files.append(entry)
    return {"path": str(path), "kind": guess_kind(path), "verdict": report.verdict.value,
            "ignore": list(ignore),
            "parameters": totals["parameters"],
            "tensors": {"count": totals["tensors"], "dtypes": dtypes, "bytes": totals["bytes"]},
            "files": files}


@cli.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--ignore", "ignore", multiple=True, metavar="GLOB",
              help="Leave files matching GLOB out of the inspection (repeatable).")
def inspect_cmd(path: Path, as_json: bool, ignore: tuple[str, ...]) -> None:
    """Formats, target kind, tensors and file-safety verdict of PATH; nothing is loaded.

    Exit 0 safe, 1 unsafe, 3 inconclusive, 2 usage error (docs/usage.md#exit-codes).
    """
    info = inspect_path(path, tuple(ignore))
    if as_json:
        echo_json(info)
    else:
        t = info["tensors"]
        click.echo(f"{info['path']}: kind {info['kind']}, {info['parameters']:,} parameters in "
                   f"{t['count']} tensors ({_dtypes(t['dtypes'])}, {t['bytes']:,} bytes)")
        click.echo(f"file safety: {info['verdict'].upper()}")
        if info["ignore"]:
            click.echo(f"ignored (not scanned): {', '.join(info['ignore'])}")
        for f in info["files"]:
            extra = f" - {f['tensors']['tensors']} tensors" if "tensors" in f else ""
            click.echo(f"  {f['verdict']:<12} {f['format']:<12} {f['path']}{extra}")
            for finding in f["findings"]:
                click.echo(f"      {finding}")
    sys.exit(EXIT_BY_VERDICT[info["verdict"]])


def _dtypes(d: dict[str, int]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(d.items())) or "no dtypes"
