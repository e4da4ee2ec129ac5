"""``provscan poison apply-trigger`` and ``provscan poison asr``: measure what an injection did."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from provscan.errors import ProvscanError


@click.group("poison")
def poison() -> None:
    """Helpers for datasets poisoned by provscan's injectors."""


@poison.command("apply-trigger")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--secret", required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--relabel/--keep-labels", default=True, show_default=True,
              help="Set labels to the attacker's labels (for attack-success measurement).")
def apply_trigger_cmd(data: Path, secret: Path, out: Path, relabel: bool) -> None:
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
    click.echo(json.dumps({"out": str(out), "n": int(len(y))}))


@poison.command("asr")
@click.argument("model")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--secret", required=True, type=click.Path(path_type=Path))
@click.option("--device", default="auto", show_default=True)
def asr_cmd(model: str, data: Path, secret: Path, device: str) -> None:
    """Attack success rate and clean accuracy of MODEL on DATA under the secret's trigger."""
    from provscan.datasets import load_dataset
    from provscan.plugins import get_host
    from provscan.targets import OpenOptions
    from provscan_poison.triggers import attack_success_rate, load_secret

    sec = load_secret(secret)
    ds = load_dataset(data)
    target = get_host().hook.open_target(location=model, options=OpenOptions(device=device))
    if target is None or not hasattr(target, "logits"):
        raise ProvscanError(f"{model}: not an image classifier provscan can open")

    def predict(x: np.ndarray) -> np.ndarray:
        return target.logits(x).argmax(-1)

    click.echo(json.dumps(attack_success_rate(predict, ds.x, ds.y, sec), sort_keys=True))
