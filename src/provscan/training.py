"""A plain, seeded training loop for small classifiers (fixtures, demos, benchmarks)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from provscan.progress import progress


def train_classifier(
    module: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
    weight_decay: float = 5e-4,
    augment: bool = False,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Train with Adam and cross-entropy; ``augment`` adds random 1-pixel shifts. Returns the module
    in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    device = torch.device(device)
    module.to(device).train()
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    opt = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    for _ in progress(range(epochs), desc="train"):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch_size):
            idx = perm[i : i + batch_size]
            xb, yb = xt[idx], yt[idx]
            if augment:
                xb = random_shift(xb, gen)
            opt.zero_grad()
            loss = loss_fn(module(xb.to(device)), yb.to(device))
            loss.backward()
            opt.step()
        sched.step()
    return module.eval()


def random_shift(x: torch.Tensor, gen: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels (zero padding)."""
    n = x.shape[0]
    pad = torch.nn.functional.pad(x, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    h, w = x.shape[-2:]
    return torch.stack([pad[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


@torch.no_grad()
def accuracy(module: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    module.eval()
    xt = torch.as_tensor(x, dtype=torch.float32)
    preds = torch.cat([module(xt[i : i + batch_size]).argmax(-1) for i in range(0, len(xt), batch_size)])
    return float((preds.numpy() == np.asarray(y)).mean())
