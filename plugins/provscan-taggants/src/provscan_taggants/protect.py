"""Protecting a dataset: draw the secret, craft the taggants, return the protected copy.

:func:`protect` is the library entry point (the injector and the demo call it); it works on an
in-memory :class:`provscan.datasets.ImageDataset` and never modifies it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from provscan import ProvscanError, resolve_device
from provscan.datasets import ImageDataset, quantize_like
from provscan_taggants.secret import Secret

if TYPE_CHECKING:
    import numpy as np
    import torch


MODES = ("clean-label", "watermark")
OBJECTIVES = ("per-key", "sum")
DEFAULT_BUDGET = {"clean-label": 0.10, "watermark": 0.03}


@dataclass
class TaggantConfig:
    """Everything that shapes the taggants (stored in the secret for the record)."""

    mode: str = "clean-label"
    keys: int = 10
    budget: float | None = None  # fraction of the training set; None: per-mode default
    eps: float = 96.0  # l-infinity bound, in 1/255 units
    steps: int = 200
    restarts: int = 1
    objective: str = "per-key"
    surrogate: str = "small-cnn"
    surrogate_epochs: int = 15
    ensemble: int = 1  # surrogates trained with different seeds, loss averaged over them
    snapshots: int = 1  # checkpoints along each surrogate's training used as extra surrogates
    retrain_every: int = 50  # retrain the surrogates on the poisoned data every N steps (0: never)
    augment: bool = True
    key_smoothness: int = 2
    blend: float = 0.5  # watermark mode: weight of the key in the blended samples
    device: str = "auto"

    def resolved_budget(self) -> float:
        return DEFAULT_BUDGET[self.mode] if self.budget is None else float(self.budget)

    def check(self, ds: ImageDataset) -> None:
        if self.mode not in MODES:
            raise ProvscanError(f"taggants: mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.objective not in OBJECTIVES:
            raise ProvscanError(f"taggants: objective {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        if self.keys < 1:
            raise ProvscanError("taggants: --keys must be at least 1")
        if not 0 < self.resolved_budget() <= 0.5:
            raise ProvscanError("taggants: --budget must lie in (0, 0.5] (a fraction of the data)")
        if not 0 < self.eps <= 255:
            raise ProvscanError("taggants: --eps must lie in (0, 255] (units of 1/255)")
        if not 0 < self.blend <= 1:
            raise ProvscanError("taggants: --blend must lie in (0, 1]")
        if self.ensemble < 1 or self.retrain_every < 0:
            raise ProvscanError("taggants: --ensemble must be >= 1 and --retrain-every >= 0")
        if self.steps < 1 or self.restarts < 1:
            raise ProvscanError("taggants: --steps and --restarts must be at least 1")
        if ds.num_classes < 2:
            raise ProvscanError("taggants: the dataset needs at least 2 classes")
        if ds.x.shape[-1] < 4 or ds.x.shape[-2] < 4:
            raise ProvscanError(f"taggants: images of {ds.x.shape[-2]}x{ds.x.shape[-1]} are too small")


@dataclass
class Protected:
    data: ImageDataset
    secret: Secret
    summary: dict[str, Any]


def protect(ds: ImageDataset, cfg: TaggantConfig, seed: int) -> Protected:
    """Draw K keys and labels, then craft (clean-label) or blend (watermark) the taggants.

    The summary holds no secret (no keys, no labels): it is safe to print."""
    cfg.check(ds)
    with tiny_model_threads(ds.x.shape[-2] * ds.x.shape[-1]):
        return _protect(ds, cfg, seed)


@contextlib.contextmanager
def tiny_model_threads(pixels: int) -> Iterator[None]:
    """One CPU thread for tiny images: intra-op parallelism only adds overhead there, and a
    shared machine makes multi-threaded tiny kernels many times slower. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    if pixels <= 32 * 32:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _protect(ds: ImageDataset, cfg: TaggantConfig, seed: int) -> Protected:
    import numpy as np

    from provscan_taggants import craft

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    keys = craft.smooth_keys(cfg.keys, ds.input_shape, rng, cfg.key_smoothness)
    labels = craft.draw_key_labels(cfg.keys, ds.num_classes, rng)
    budget = cfg.resolved_budget()
    x, y = ds.x.copy(), ds.y.copy()
    info: dict[str, Any] = {}
    if cfg.mode == "clean-label":
        groups = craft.assign_poisons(ds.y, labels, budget, rng)
        chosen = np.concatenate(groups)
        local, offset = [], 0
        for g in groups:
            local.append(np.arange(offset, offset + len(g)))
            offset += len(g)
        device = resolve_device(cfg.device)
        surrogates = [m for i in range(cfg.ensemble)
                      for m in _train_surrogate(ds.x, ds, cfg, seed + i, device, cfg.snapshots)]

        def retrain(step: int, delta: np.ndarray) -> list[torch.nn.Module]:
            xs = ds.x.copy()
            xs[chosen] = np.clip(ds.x[chosen] + delta, 0, 1)
            return [m for i in range(cfg.ensemble)
                    for m in _train_surrogate(xs, ds, cfg, seed + step + i, device, cfg.snapshots)]

        result = craft.gradient_matching(
            surrogates, keys, labels, ds.x[chosen], ds.y[chosen], local, cfg.eps / 255,
            steps=cfg.steps, restarts=cfg.restarts, objective=cfg.objective, augment=cfg.augment,
            seed=seed, device=device, retrain=retrain, retrain_every=cfg.retrain_every)
        x[chosen] = ds.x[chosen] + result.delta
        info = {"crafting_loss": result.loss, "crafting_loss_restarts": result.losses}
    else:
        per_key = max(1, int(round(budget * len(y) / cfg.keys)))
        perm = rng.permutation(len(y))
        groups = [np.sort(perm[j * per_key : (j + 1) * per_key]) for j in range(cfg.keys)]
        chosen = np.concatenate(groups)
        x = craft.blend_watermark(ds.x, keys, groups, cfg.blend)
        for g, lab in zip(groups, labels):
            y[g] = lab
        info = {"relabelled": int((y != ds.y).sum()),
                "warning": "watermark mode is visible and dirty-label (not stealthy)"}
    x = quantize_like(ds, x)
    changed = np.unique(chosen)
    summary = {
        "mode": cfg.mode, "keys": cfg.keys,
        "samples": int(len(y)), "modified": int(len(changed)), "budget": budget,
        "eps_255": cfg.eps if cfg.mode == "clean-label" else None,
        "stealth": craft.stealth(ds.x[changed], x[changed]),
        "seconds": round(time.perf_counter() - t0, 2), **info,
    }
    config = {**asdict(cfg), "budget": budget, "seed": seed}
    config.pop("device")
    secret = Secret(keys, labels, ds.num_classes, cfg.mode, config)
    return Protected(ds.replace(x=x, y=y), secret, summary)


def _train_surrogate(x: np.ndarray, ds: ImageDataset, cfg: TaggantConfig, seed: int,
                     device: torch.device, snapshots: int = 1) -> list[torch.nn.Module]:
    """Train one surrogate; with ``snapshots`` > 1, also return copies taken at evenly spaced
    points of its training (early models still learn from every sample, late ones are sharp)."""
    import copy

    import torch

    from provscan.plugins import get_host
    from provscan.training import train_classifier

    factories = get_host().model_factories()
    if cfg.surrogate not in factories:
        raise ProvscanError(f"taggants: unknown surrogate {cfg.surrogate!r} "
                            f"(known: {', '.join(sorted(factories))})")
    c, h, _ = ds.input_shape
    torch.manual_seed(seed)
    model = factories[cfg.surrogate](in_channels=c, num_classes=ds.num_classes, image_size=h)
    n = max(1, min(snapshots, cfg.surrogate_epochs))
    bounds = [round(cfg.surrogate_epochs * (i + 1) / n) for i in range(n)]
    out, done = [], 0
    for i, end in enumerate(bounds):
        model = train_classifier(model, x, ds.y, epochs=end - done, seed=seed + i, device=device)
        done = end
        snap = copy.deepcopy(model)
        for p in snap.parameters():
            p.requires_grad_(True)
        out.append(snap)
    return out
