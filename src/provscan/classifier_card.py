"""The provscan classifier checkpoint format: ``model.safetensors`` plus a model card.

A checkpoint saved with :func:`save_classifier` is a directory with ``model.safetensors`` and
``provscan_model.json`` naming a *registered* model factory and its config; loading never imports a
module named by the checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provscan.errors import ProvscanError
from provscan.fsutil import atomic_dir

if TYPE_CHECKING:
    from torch import nn

MODEL_CARD = "provscan_model.json"


def save_classifier(module: nn.Module, out: Path, factory: str, config: dict[str, Any],
                    num_classes: int, input_shape: tuple[int, ...], overwrite: bool = False,
                    extra: dict[str, Any] | None = None) -> Path:
    """Save a classifier as a provscan checkpoint directory (safetensors + model card), atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    card = {"format": "provscan-classifier", "version": 1, "factory": factory, "config": config,
            "num_classes": int(num_classes), "input_shape": [int(s) for s in input_shape],
            "input_range": [0.0, 1.0], **(extra or {})}
    with atomic_dir(Path(out), overwrite=overwrite) as tmp:
        save_file(state, str(tmp / "model.safetensors"))
        (tmp / MODEL_CARD).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return Path(out)


def build_from_card(card: dict[str, Any], factories: dict[str, Any]) -> nn.Module:
    name = card.get("factory")
    if name not in factories:
        known = ", ".join(sorted(factories)) or "none"
        raise ProvscanError(f"{MODEL_CARD} names factory {name!r}, which no installed plugin registers (known: {known})")
    config = card.get("config") or {}
    if not isinstance(config, dict):
        raise ProvscanError(f"{MODEL_CARD}: config must be an object")
    try:
        return factories[name](**config)
    except TypeError as exc:
        raise ProvscanError(f"{MODEL_CARD}: bad config for factory {name!r}: {exc}") from None


