"""The two optimisations, each batched over all probed classes at once.

- :func:`max_margins` (MM-BD, Wang et al. S&P 2024): for every class ``c``, projected gradient
  ascent from ``restarts`` random images on the logit margin ``z_c - max_{j != c} z_j``; the class
  statistic is the largest margin reached. No clean data.
- :func:`invert_triggers` (Neural Cleanse, Wang et al. S&P 2019): for every class ``c``, a mask
  ``m_c`` and pattern ``p_c`` such that ``(1 - m_c) x + m_c p_c`` is classified ``c`` for clean
  ``x``, with the L1 norm of the mask as small as possible (adaptive penalty weight per class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from provscan import ClassifierTarget, progress


def _margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    own = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return own - others.max(1).values


def max_margins(target: ClassifierTarget, classes: list[int], steps: int, restarts: int,
                lr: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class: the largest margin reached (shape ``(len(classes),)``) and the input reaching it."""
    gen = torch.Generator().manual_seed(seed)
    k = len(classes)
    x0 = torch.rand((k * restarts, *target.input_shape), generator=gen)
    x = x0.to(target.device).requires_grad_(True)
    labels = torch.tensor(classes, device=target.device).repeat_interleave(restarts)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in progress(range(steps), desc="max-margin", total=steps):
        opt.zero_grad(set_to_none=True)
        loss = -_margin(target.forward(x), labels).sum()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
    with torch.no_grad():
        margins = _margin(target.forward(x), labels).view(k, restarts)
        best = margins.argmax(1)
        images = x.view(k, restarts, *target.input_shape)[torch.arange(k), best]
    return margins.max(1).values.cpu().numpy().astype(float), images.cpu().numpy()


IMPROVEMENT_TOLERANCE = 0.01  # relative shrink of the best mask norm that counts as progress


@dataclass
class Inversion:
    norms: np.ndarray  # (K,) smallest L1 mask norm that reached the success threshold (or final)
    reached: np.ndarray  # (K,) bool: the threshold was reached
    success: np.ndarray  # (K,) attack success of the reported mask on the clean batch
    masks: np.ndarray  # (K, 1, H, W)
    patterns: np.ndarray  # (K, C, H, W)
    steps: np.ndarray  # (K,) optimisation steps each class ran (early stopping)


def invert_triggers(target: ClassifierTarget, x_clean: np.ndarray, classes: list[int], steps: int,
                    lr: float, success: float, seed: int, init_cost: float = 1e-2,
                    check_every: int = 5, patience: int = 10,
                    tolerance: float = IMPROVEMENT_TOLERANCE) -> Inversion:
    """Reverse-engineer a minimal trigger for every class in one batched optimisation.

    The penalty weight of each class is adapted every ``check_every`` steps. Early stopping
    (``patience`` > 0): a class leaves the batch once its trigger has reached ``success``, its
    penalty has been both raised and lowered, and its smallest successful mask norm has then not
    shrunk by more than ``tolerance`` (relative) for ``patience`` steps; the run ends when no class
    is left or after ``steps``. A class that never reaches ``success`` runs to ``steps``.
    """
    gen = torch.Generator().manual_seed(seed)
    dev = target.device
    k, (c, h, w) = len(classes), target.input_shape
    x = torch.as_tensor(x_clean, dtype=torch.float32, device=dev)
    b = len(x)
    mask_p = (torch.randn((k, 1, h, w), generator=gen) * 0.1 - 2.0).to(dev).requires_grad_(True)
    pat_p = (torch.randn((k, c, h, w), generator=gen) * 0.1).to(dev).requires_grad_(True)
    labels = torch.tensor(classes, device=dev)
    cost = torch.full((k,), init_cost, device=dev)
    best_norm = torch.full((k,), float("inf"), device=dev)
    best_mask = torch.zeros((k, 1, h, w), device=dev)
    best_pat = torch.zeros((k, c, h, w), device=dev)
    best_succ = torch.zeros(k, device=dev)
    final_mask = torch.zeros((k, 1, h, w), device=dev)
    final_pat = torch.zeros((k, c, h, w), device=dev)
    anchor = torch.full((k,), float("inf"), device=dev)  # norm at the last real improvement
    since = torch.zeros(k, dtype=torch.long, device=dev)  # steps since then
    opt = torch.optim.Adam([mask_p, pat_p], lr=lr, betas=(0.5, 0.9))
    hits = torch.zeros(k, device=dev)
    went_up = torch.zeros(k, dtype=torch.bool, device=dev)
    went_down = torch.zeros(k, dtype=torch.bool, device=dev)
    active = torch.arange(k, device=dev)
    steps_run = torch.zeros(k, dtype=torch.long, device=dev)
    for step in progress(range(steps), desc="trigger-inversion", total=steps):
        n = len(active)
        mask = (torch.tanh(mask_p[active]) + 1) / 2
        pat = (torch.tanh(pat_p[active]) + 1) / 2
        stamped = (1 - mask[:, None]) * x[None] + (mask * pat)[:, None]  # (n, B, C, H, W)
        flat_labels = labels[active].repeat_interleave(b)
        logits = target.forward(stamped.reshape(n * b, c, h, w))
        ce = torch.nn.functional.cross_entropy(logits, flat_labels, reduction="none").view(n, b).mean(1)
        l1 = mask.flatten(1).sum(1)
        opt.zero_grad(set_to_none=True)
        (ce + cost[active] * l1).sum().backward()
        opt.step()
        with torch.no_grad():
            steps_run[active] += 1
            final_mask[active], final_pat[active] = mask, pat
            succ = (logits.argmax(1) == flat_labels).float().view(n, b).mean(1)
            ok = succ >= success
            better = ok & (l1 < best_norm[active])
            rows = active[better]
            best_norm[rows] = l1[better]
            best_mask[rows], best_pat[rows], best_succ[rows] = mask[better], pat[better], succ[better]
            hits[active] += ok.float()
            if (step + 1) % check_every == 0:
                # Neural Cleanse's schedule: raise the penalty while the trigger works, lower it otherwise.
                up = hits >= check_every * 0.5
                cost = torch.where(up, cost * 1.5, cost / 1.5)
                went_up |= up
                went_down |= went_up & ~up
                hits.zero_()
            if patience > 0:
                moved = best_norm[active] < anchor[active] * (1 - tolerance)
                anchor[active] = torch.where(moved, best_norm[active], anchor[active])
                # As in Neural Cleanse, a stall counts only once the penalty has been both raised and
                # lowered (it has found its balance); before that the mask is still being squeezed.
                since[active] = torch.where(moved | ~(went_up & went_down)[active], 0, since[active] + 1)
                done = torch.isfinite(best_norm[active]) & (since[active] >= patience)
                if bool(done.any()):
                    active = active[~done]
                    if len(active) == 0:
                        break
    with torch.no_grad():
        reached = torch.isfinite(best_norm)
        final_norm = final_mask.flatten(1).sum(1)
        norms = torch.where(reached, best_norm, final_norm)
        best_mask[~reached], best_pat[~reached] = final_mask[~reached], final_pat[~reached]
    return Inversion(norms.cpu().numpy().astype(float), reached.cpu().numpy(),
                     best_succ.cpu().numpy().astype(float), best_mask.cpu().numpy(),
                     best_pat.cpu().numpy(), steps_run.cpu().numpy())
