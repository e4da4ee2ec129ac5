"""Trigger inversion: early stopping (0.2.0 defaults) vs fixed-step runs, in one process.

Trains one BadNets-10 % small-cnn on digits (development seed 200, target class 3; not a seed the
detection benchmarks use), then times ``invert_triggers`` with the 0.2.0 defaults (32 clean images,
penalty adapted every 5 steps, patience 10) against the 0.1.0-like setting (64 clean images, every
10 steps, no early stopping, 300 steps), interleaved, one CPU thread. Writes
docs/benchmarks/trigger_inversion_speed.md.

    nice -n 10 python benchmarks/trigger_inversion_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
TARGET = 3
SETTINGS = {
    "fixed 300 steps, 64 images, check every 10 (0.1.0-like)":
        dict(n_clean=64, check_every=10, patience=0),
    "early stopping, 32 images, check every 5 (0.2.0 default)":
        dict(n_clean=32, check_every=5, patience=10),
}


def build_model(work: Path) -> Path:
    from provscan_poison.injectors import BadNets

    from provscan.architectures import small_cnn
    from provscan.classifier_card import save_classifier
    from provscan.datasets import digits_dataset, save_dataset, split
    from provscan.training import train_classifier

    train, test = split(digits_dataset(), 0.2, 0)
    save_dataset(train, work / "train.npz")
    save_dataset(test, work / "test.npz")
    params = {q.name: q.default for q in BadNets.params} | {"rate": 0.1, "target": TARGET}
    BadNets().apply(work / "train.npz", work / "poisoned.npz", work / "secret.json", params,
                    np.random.default_rng(200))
    from provscan.datasets import load_dataset

    ds = load_dataset(work / "poisoned.npz")
    module = train_classifier(small_cnn(1, 10, image_size=8), ds.x, ds.y, epochs=20, lr=3e-3, seed=200)
    save_classifier(module, work / "model", "small-cnn",
                    {"in_channels": 1, "num_classes": 10, "image_size": 8}, 10, (1, 8, 8))
    return work / "model"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "trigger_inversion_speed.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from provscan_backdoor.optimize import invert_triggers

    from provscan.checkpoint import open_checkpoint
    from provscan.datasets import load_dataset
    from provscan.plugins import new_host
    from provscan.targets import OpenOptions

    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp))
        target = open_checkpoint(new_host(load_entry_points=True), model,
                                 OpenOptions(device="cpu")).require_target()
        x_all = load_dataset(Path(tmp) / "test.npz").x
        times: dict[str, list[float]] = {name: [] for name in SETTINGS}
        found: dict[str, list[int]] = {name: [] for name in SETTINGS}
        steps: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for rep in range(args.repeats):
            for name, s in SETTINGS.items():
                start = time.perf_counter()
                inv = invert_triggers(target, x_all[: s["n_clean"]], list(range(10)), 300, 0.1, 0.99,
                                      seed=rep, check_every=s["check_every"], patience=s["patience"])
                times[name].append(time.perf_counter() - start)
                found[name].append(int(np.argmin(inv.norms)))
                steps[name].append(float(inv.steps.mean()))
    names = list(SETTINGS)
    ratio = np.median(times[names[0]]) / np.median(times[names[1]])
    lines = ["# Trigger inversion: early stopping vs fixed steps (one process)", "",
             f"Reproduce: `nice -n 10 python benchmarks/trigger_inversion_speed.py --repeats {args.repeats}` "
             "(one BadNets-10 % small-cnn, dev seed 200, target class 3; one CPU thread; runs interleaved).",
             "", "| setting | median s | mean steps per class | smallest-norm class per run |",
             "| --- | ---: | ---: | --- |"]
    for name in names:
        lines.append(f"| {name} | {np.median(times[name]):.2f} | {np.mean(steps[name]):.0f} | "
                     f"{', '.join(map(str, found[name]))} |")
    lines += ["", f"Speed-up of the 0.2.0 defaults: {ratio:.1f}x (median over {args.repeats} runs).", ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
