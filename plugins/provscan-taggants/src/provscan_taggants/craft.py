"""Crafting data taggants: secret keys, a surrogate, and clean-label perturbations.

After Bouaziz et al., "Data Taggants" (arXiv 2410.09101). The owner draws K out-of-distribution
*keys* with labels drawn i.i.d. uniformly over the classes, then perturbs a small budget of
training samples *of each key's class* (labels untouched) so that training on them pushes a model
the same way as training on (key, key label) would: the perturbations minimise
1 - cos(grad_theta L(keys), grad_theta L(perturbed samples)) on a surrogate model, with signed
Adam under an l-infinity bound, a differentiable random shift, and restarts.

``objective="sum"`` is the paper's objective (one cosine between the summed key gradient and the
summed poison gradient); ``objective="per-key"`` matches each key's gradient with the gradient of
the samples assigned to that key and averages the cosines, so each key gets its own samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from provscan import progress


def smooth_keys(k: int, shape: tuple[int, ...], rng: np.random.Generator,
                smoothness: int = 2) -> np.ndarray:
    """``k`` low-frequency noise images shaped ``(k, *shape)`` in [0, 1]: uniform noise on a grid
    ``smoothness`` times coarser, upsampled bilinearly (out of distribution for natural data)."""
    c, h, w = shape
    gh, gw = max(2, h // smoothness), max(2, w // smoothness)
    coarse = torch.as_tensor(rng.random((k, c, gh, gw)), dtype=torch.float32)
    if (gh, gw) == (h, w):
        return coarse.numpy()
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True).clamp(0, 1).numpy()


def draw_key_labels(k: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Key labels i.i.d. uniform over the classes (what makes the verification null exact)."""
    return rng.integers(0, num_classes, size=k).astype(np.int64)


def assign_poisons(y: np.ndarray, key_labels: np.ndarray, budget: float,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """For each key, distinct training indices of the key's class (``budget * N / K`` each,
    fewer when the class runs out). The same sample never serves two keys."""
    per_key = max(1, int(round(budget * len(y) / len(key_labels))))
    pools = {int(c): list(rng.permutation(np.flatnonzero(y == c))) for c in np.unique(key_labels)}
    out = []
    for lab in key_labels:
        pool = pools[int(lab)]
        take, pools[int(lab)] = pool[:per_key], pool[per_key:]
        out.append(np.asarray(sorted(take), dtype=np.int64))
    return out


def random_shift_batch(x: torch.Tensor, gen: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """One random translation (zero padding) for the whole batch; differentiable in ``x``."""
    if max_shift <= 0:
        return x
    dy, dx = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=gen))
    h, w = x.shape[-2:]
    pad = F.pad(x, (max_shift,) * 4)
    return pad[..., max_shift - dy : max_shift - dy + h, max_shift - dx : max_shift - dx + w]


def _param_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, create_graph: bool
                ) -> list[torch.Tensor]:
    params = [p for p in model.parameters() if p.requires_grad]
    loss = F.cross_entropy(model(x), y, reduction="sum")
    return list(torch.autograd.grad(loss, params, create_graph=create_graph))


def _cosine(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    dot = sum((u * v).sum() for u, v in zip(a, b))
    na = torch.sqrt(sum((u * u).sum() for u in a))
    nb = torch.sqrt(sum((v * v).sum() for v in b))
    return dot / (na * nb + 1e-12)  # type: ignore[operator]


@dataclass
class CraftResult:
    delta: np.ndarray  # (P, C, H, W), perturbations of the poison samples
    loss: float  # final matching loss of the chosen restart (1 - mean cosine)
    losses: list[float] = field(default_factory=list)  # final loss of every restart


def gradient_matching(
    surrogates: list[nn.Module],
    keys: np.ndarray,
    key_labels: np.ndarray,
    x_poison: np.ndarray,
    y_poison: np.ndarray,
    groups: list[np.ndarray],
    eps: float,
    steps: int = 200,
    lr: float | None = None,
    restarts: int = 1,
    objective: str = "per-key",
    augment: bool = True,
    seed: int = 0,
    device: torch.device | str = "cpu",
    retrain: Callable[[int, np.ndarray], list[nn.Module]] | None = None,
    retrain_every: int = 0,
) -> CraftResult:
    """Signed-Adam gradient matching under ``||delta||_inf <= eps`` (images stay in [0, 1]).

    ``groups[j]`` indexes (into ``x_poison``) the samples assigned to key ``j``. With several
    surrogates the loss is averaged over them. ``retrain(step)``, when given with
    ``retrain_every``, returns fresh surrogates trained on the data poisoned with the current
    perturbations (so the matching follows a model that has already seen them).
    """
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    xk = torch.as_tensor(keys, dtype=torch.float32, device=device)
    yk = torch.as_tensor(key_labels, dtype=torch.long, device=device)
    xp = torch.as_tensor(x_poison, dtype=torch.float32, device=device)
    yp = torch.as_tensor(y_poison, dtype=torch.long, device=device)
    lr = eps / 10 if lr is None else lr
    idx = [torch.as_tensor(g, dtype=torch.long, device=device) for g in groups]
    best: tuple[float, torch.Tensor] | None = None
    losses: list[float] = []
    for restart in progress(range(restarts), desc="restarts", total=restarts):
        models = [m.to(device).eval() for m in surrogates]
        targets = _key_gradients(models, xk, yk, objective)
        init = (torch.rand(xp.shape, generator=gen) * 2 - 1).to(device) * eps
        delta = ((xp + init).clamp(0, 1) - xp).requires_grad_(True)
        opt = torch.optim.Adam([delta], lr=lr)
        milestones = [int(steps * f) for f in (0.375, 0.625, 0.875)]
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1)
        last = 1.0
        for step in progress(range(steps), desc=f"craft {restart + 1}/{restarts}", total=steps):
            if retrain is not None and retrain_every and step and step % retrain_every == 0:
                models = [m.to(device).eval() for m in retrain(step, delta.detach().cpu().numpy())]
                targets = _key_gradients(models, xk, yk, objective)
            opt.zero_grad()
            xin = random_shift_batch(xp + delta, gen) if augment else xp + delta
            loss = torch.zeros((), device=device)
            for model, tgt in zip(models, targets):
                loss = loss + _matching_loss(model, xin, yp, idx, tgt, objective)
            loss = loss / len(models)
            loss.backward()
            delta.grad.sign_()  # type: ignore[union-attr]
            opt.step()
            sched.step()
            with torch.no_grad():
                delta.clamp_(-eps, eps)
                delta.copy_((xp + delta).clamp(0, 1) - xp)
            last = float(loss.detach())
        losses.append(last)
        if best is None or last < best[0]:
            best = (last, delta.detach().clone())
    assert best is not None
    return CraftResult(best[1].cpu().numpy(), best[0], losses)


def _key_gradients(models: list[nn.Module], xk: torch.Tensor, yk: torch.Tensor,
                   objective: str) -> list[Any]:
    out: list[Any] = []
    for m in models:
        if objective == "sum":
            out.append([g.detach() for g in _param_grad(m, xk, yk, False)])
        else:
            out.append([[g.detach() for g in _param_grad(m, xk[j : j + 1], yk[j : j + 1], False)]
                        for j in range(len(xk))])
    return out


def _matching_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: list[torch.Tensor],
                   target: Any, objective: str) -> torch.Tensor:
    if objective == "sum":
        return 1 - _cosine(_param_grad(model, x, y, True), target)
    cos = [_cosine(_param_grad(model, x[i], y[i], True), t) for i, t in zip(idx, target) if len(i)]
    return 1 - torch.stack(cos).mean()


def blend_watermark(x: np.ndarray, keys: np.ndarray, groups: list[np.ndarray],
                    alpha: float) -> np.ndarray:
    """Dirty-label baseline: blend key ``j`` into the samples ``groups[j]`` with weight
    ``alpha`` (the caller relabels them to the key label). Visible by design."""
    out = x.copy()
    for key, g in zip(keys, groups):
        out[g] = (1 - alpha) * x[g] + alpha * key[None]
    return out


def stealth(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """l-infinity and l2 size of the change (per sample, in [0, 1] pixel units) and PSNR (dB)."""
    d = (after - before).reshape(len(before), -1).astype(np.float64)
    if len(d) == 0:
        return {"linf": 0.0, "linf_255": 0.0, "l2_mean": 0.0, "psnr_db": float("inf")}
    mse = float((d**2).mean())
    return {"linf": float(np.abs(d).max()), "linf_255": float(np.abs(d).max() * 255),
            "l2_mean": float(np.sqrt((d**2).sum(1)).mean()),
            "psnr_db": float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))}
