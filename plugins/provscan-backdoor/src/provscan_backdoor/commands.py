"""``provscan backdoor train-references`` and ``provscan backdoor score-references``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from provscan import ProvscanError, command_host, options_from_cli, target_options


@click.group("backdoor")
def backdoor() -> None:
    """Reference clean models for the backdoor detectors' calibrated p-values."""


@backdoor.command("train-references")
@click.argument("clean_data", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New directory of models.")
@click.option("-n", "count", default=19, show_default=True, type=click.IntRange(1))
@click.option("--factory", default="small-cnn", show_default=True)
@click.option("--epochs", default=20, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=3e-3, show_default=True, type=float)
@click.option("--seed", default=1000, show_default=True, type=int, help="Seed of the first model.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def train_references_cmd(clean_data: Path, out: Path, count: int, factory: str, epochs: int,
                         lr: float, seed: int, as_json: bool) -> None:
    """Train COUNT clean models on CLEAN_DATA with provscan's training loop (one per seed).

    The conformal p-value is valid when the model under test, if clean, comes from the same
    recipe; use the recipe (architecture, data, epochs) the audited model was trained with."""
    from provscan_backdoor.training import train_references

    paths = train_references(command_host(), clean_data, out, count, factory, epochs, lr, seed)
    if as_json:
        click.echo(json.dumps({"out": str(out), "models": [p.name for p in paths]}))
    else:
        click.echo(f"wrote {len(paths)} reference models to {out}")


@backdoor.command("score-references")
@click.argument("references", type=click.Path(path_type=Path))
@click.option("--detector", "-d", "detector_id", required=True)
@click.option("--param", "-p", "params", multiple=True, help="KEY=VALUE for the detector.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Scores file (JSON).")
@click.option("--seed", default=0, show_default=True, type=int)
@target_options
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
def score_references_cmd(references: Path, detector_id: str, params: tuple[str, ...], out: Path,
                         seed: int, as_json: bool, **open_values: Any) -> None:
    """Score each model in REFERENCES once and write the scores (pass the file as the detector's
    ``references`` parameter; its statistic parameters must match the scan's).

    REFERENCES is a directory of checkpoints (provscan classifier or Hugging Face directories,
    or weight files such as ``.pt`` / ``.safetensors``) or a text file listing them, one per line.
    Plain state dicts of your own architecture need ``--model-factory module:callable`` and the
    input options (``--input-shape``, ``--num-classes``, ``--input-mean``/``--input-std``): use
    the same ones for the scan."""
    from provscan_backdoor.training import score_references

    given: dict[str, Any] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep:
            raise ProvscanError(f"malformed --param {item!r}: expected KEY=VALUE")
        given[key] = value
    options = options_from_cli(**open_values)
    doc = score_references(command_host(), references, detector_id, given, out, seed,
                           options.device, options)
    if as_json:
        click.echo(json.dumps({"out": str(out), "scores": doc["scores"]}))
    else:
        scores = doc["scores"]
        click.echo(f"wrote {len(scores)} reference scores to {out} "
                   f"(min {min(scores):.4g}, max {max(scores):.4g})")
