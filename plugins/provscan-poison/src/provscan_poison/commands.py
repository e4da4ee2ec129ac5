"""``provscan poison apply-trigger`` and ``provscan poison asr``: measure what an injection did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from provscan import ProvscanError, command_host

if TYPE_CHECKING:
    import numpy as np


@click.group("poison")
def poison() -> None:
    """Helpers for datasets poisoned by provscan's injectors."""


@poison.command("apply-trigger")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--secret", required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--relabel/--keep-labels", default=True, show_default=True,
              help="Set labels to the attacker's labels (for attack-success measurement).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def apply_trigger_cmd(data: Path, secret: Path, out: Path, relabel: bool, as_json: bool) -> None:
    """Write a copy of DATA with the secret's trigger stamped on every image."""
    from provscan.datasets import load_dataset, quantize_like, save_dataset
    from provscan_poison.triggers import apply_trigger, load_secret, triggered_labels

    sec = load_secret(secret)
    ds = load_dataset(data)
    if ds.storage != "folder" and out.suffix != ".npz":
        raise ProvscanError(f"--out {out}: an .npz dataset must be written to a path ending in .npz")
    x = quantize_like(ds, apply_trigger(ds.x, sec))
    y = triggered_labels(ds.y, sec) if relabel else ds.y
    save_dataset(ds.replace(x, y), out)
    if as_json:
        click.echo(json.dumps({"out": str(out), "n": int(len(y))}))
    else:
        click.echo(f"wrote {out} ({len(y)} images with the trigger)")


@poison.command("asr")
@click.argument("model")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--secret", required=True, type=click.Path(path_type=Path))
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the rates as JSON.")
def asr_cmd(model: str, data: Path, secret: Path, device: str, as_json: bool) -> None:
    """Attack success rate and clean accuracy of MODEL on DATA under the secret's trigger."""
    from provscan import OpenOptions, open_checkpoint
    from provscan.datasets import load_dataset
    from provscan_poison.triggers import attack_success_rate, load_secret

    sec = load_secret(secret)
    ds = load_dataset(data)
    host = command_host()
    target = open_checkpoint(host, model, OpenOptions(device=device)).require_target()
    if not hasattr(target, "logits"):
        raise ProvscanError(f"{model}: not an image classifier provscan can open")

    def predict(x: np.ndarray) -> np.ndarray:
        return target.logits(x).argmax(-1)

    rates = attack_success_rate(predict, ds.x, ds.y, sec)
    if as_json:
        click.echo(json.dumps(rates, sort_keys=True))
    else:
        for key, value in sorted(rates.items()):
            click.echo(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
