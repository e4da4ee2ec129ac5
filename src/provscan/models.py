"""Small reference architectures, registered as named model factories.

A checkpoint saved with :func:`save_classifier` is a directory with ``model.safetensors`` and
``provscan_model.json`` naming a *registered* factory and its config; loading never imports a
module named by the checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from provscan.fsutil import atomic_dir

MODEL_CARD = "provscan_model.json"


def small_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 16, image_size: int = 8,
              hidden: int = 64) -> nn.Module:
    """Two 3x3 conv layers (width, 2*width), 2x2 max-pool, one hidden dense layer."""
    flat = 2 * width * (image_size // 2) ** 2
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(flat, hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def wide_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 32, image_size: int = 8) -> nn.Module:
    """Three conv layers with batch norm and global average pooling (a different family)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )


def mlp(in_channels: int = 1, num_classes: int = 10, image_size: int = 8, hidden: int = 128) -> nn.Module:
    """A two-hidden-layer perceptron over the flattened image."""
    d = in_channels * image_size * image_size
    return nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, num_classes))


FACTORIES = {"small-cnn": small_cnn, "wide-cnn": wide_cnn, "mlp": mlp}


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
    from provscan.errors import ProvscanError

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


