"""A training script that is not provscan's: plain numpy + torch, its own architecture and loop.

    python external_train.py DATA.npz OUT_DIR [--seed N] [--epochs E]

Reads an ``.npz`` with ``x`` (N, 1, 8, 8) floats in [0, 1] and ``y``; trains a LeNet-style CNN
with average pooling and tanh units by SGD with momentum and label smoothing; writes
``OUT_DIR/weights.safetensors``. It imports nothing from provscan.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn


def lenet(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 12, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(12, 24, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(24 * 2 * 2, 64), nn.Tanh(), nn.Linear(64, num_classes),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    with np.load(args.data) as z:
        x = torch.tensor(z["x"], dtype=torch.float32)
        y = torch.tensor(z["y"], dtype=torch.long)
    if x.ndim == 3:
        x = x[:, None]
    model = lenet(int(y.max()) + 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    for _ in range(args.epochs):
        for idx in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(args.out / "weights.safetensors"))


if __name__ == "__main__":
    main()
