"""Triggers as (mask, pattern) pairs, and the helpers that apply them.

Every trigger this plugin writes is stored the same way: a ``mask`` in [0, 1] and a ``pattern`` in
[0, 1], both shaped ``(C, H, W)``; a triggered image is ``(1 - mask) * x + mask * pattern``. A
BadNets patch is a 0/1 mask over a square; a blended trigger is a constant mask ``alpha``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provscan import ProvscanError

if TYPE_CHECKING:
    import numpy as np

SECRET_FORMAT = "provscan-poison-secret"
POSITIONS = ("bottom-right", "bottom-left", "top-right", "top-left")


@dataclass
class Trigger:
    mask: np.ndarray  # (C, H, W) in [0, 1]
    pattern: np.ndarray  # (C, H, W) in [0, 1]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Stamp the trigger on a batch ``(N, C, H, W)`` (or one image ``(C, H, W)``)."""
        import numpy as np

        x = np.asarray(x, dtype=np.float32)
        if x.shape[-3:] != self.mask.shape:
            raise ProvscanError(
                f"trigger shape {self.mask.shape} does not match images {x.shape[-3:]}")
        return ((1.0 - self.mask) * x + self.mask * self.pattern).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        import numpy as np

        return {"mask": np.round(self.mask, 6).tolist(), "pattern": np.round(self.pattern, 6).tolist()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Trigger:
        import numpy as np

        mask = np.asarray(d["mask"], dtype=np.float32)
        pattern = np.asarray(d["pattern"], dtype=np.float32)
        if mask.ndim != 3 or mask.shape != pattern.shape:
            raise ProvscanError(f"secret: trigger mask {mask.shape} and pattern {pattern.shape} "
                                "must both be (C, H, W)")
        return cls(mask, pattern)


def parse_colour(text: str, channels: int) -> np.ndarray:
    """``"1"`` or ``"1,0,0"`` (values in [0, 1]) as a per-channel array, or raise."""
    import numpy as np

    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise ProvscanError(f"colour {text!r}: expected numbers in [0, 1] separated by commas") from None
    if len(values) not in (1, channels):
        raise ProvscanError(f"colour {text!r} has {len(values)} values; the images have {channels} channel(s)")
    if any(not 0.0 <= v <= 1.0 for v in values):
        raise ProvscanError(f"colour {text!r}: values must lie in [0, 1]")
    return np.broadcast_to(np.asarray(values, dtype=np.float32), (channels,)).copy()


def patch_trigger(shape: tuple[int, int, int], size: int, position: str, colour: str) -> Trigger:
    """A square patch of ``size`` pixels in a corner; colour ``checker`` is a 0/1 checkerboard."""
    import numpy as np

    c, h, w = shape
    if size < 1 or size > min(h, w):
        raise ProvscanError(f"patch size {size} does not fit {h}x{w} images")
    if position not in POSITIONS:
        raise ProvscanError(f"position {position!r} is not one of {', '.join(POSITIONS)}")
    top = 0 if position.startswith("top") else h - size
    left = 0 if position.endswith("left") else w - size
    mask = np.zeros(shape, dtype=np.float32)
    mask[:, top : top + size, left : left + size] = 1.0
    pattern = np.zeros(shape, dtype=np.float32)
    if colour == "checker":
        yy, xx = np.mgrid[0:size, 0:size]
        pattern[:, top : top + size, left : left + size] = ((yy + xx + 1) % 2).astype(np.float32)
    else:
        pattern[:, top : top + size, left : left + size] = parse_colour(colour, c)[:, None, None]
    return Trigger(mask, pattern)


def blend_pattern(shape: tuple[int, int, int], kind: str, rng: np.random.Generator) -> np.ndarray:
    """``noise`` (seeded uniform), ``stripes`` or the path of an image file with the images' size."""
    import numpy as np

    c, h, w = shape
    if kind == "noise":
        return rng.random(shape, dtype=np.float32)
    if kind == "stripes":
        return np.broadcast_to(((np.arange(w) % 2) == 0).astype(np.float32), shape).copy()
    path = Path(kind)
    if not path.is_file():
        raise ProvscanError(f"pattern {kind!r}: expected noise, stripes or an image file")
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L" if c == 1 else "RGB"), dtype=np.float32) / 255.0
    except OSError as exc:
        raise ProvscanError(f"pattern {path}: unreadable image ({exc})") from None
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if arr.shape != shape:
        raise ProvscanError(f"pattern {path} has shape {arr.shape}; the images are {shape}")
    return arr


def triggered_labels(y: np.ndarray, secret: dict[str, Any]) -> np.ndarray:
    """The labels the attacker wants for triggered inputs (all-to-one or all-to-all)."""
    import numpy as np

    y = np.asarray(y, dtype=np.int64)
    if secret.get("mode") == "all-to-all":
        return (y + 1) % int(secret["num_classes"])
    return np.full_like(y, int(secret["target"]))


def load_secret(path: Path) -> dict[str, Any]:
    """Read and check a secret written by one of this plugin's injectors."""
    try:
        secret = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ProvscanError(f"{path}: not a readable secret file ({exc})") from None
    if not isinstance(secret, dict) or secret.get("format") != SECRET_FORMAT:
        raise ProvscanError(f"{path}: not a provscan-poison secret (format {SECRET_FORMAT!r} expected)")
    secret["_trigger"] = Trigger.from_json(secret["trigger"])
    return secret


def apply_trigger(x: np.ndarray, secret: dict[str, Any] | Trigger) -> np.ndarray:
    """Stamp the secret's trigger on images ``(N, C, H, W)`` in [0, 1]."""
    trig = secret if isinstance(secret, Trigger) else secret.get("_trigger") or Trigger.from_json(secret["trigger"])
    return trig.apply(x)


def attack_success_rate(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray,
                        secret: dict[str, Any]) -> dict[str, float]:
    """Fraction of triggered inputs classified as the attacker's label.

    ``predict`` maps images to predicted labels. Inputs whose true label already equals the
    attacker's label are left out (they would count as successes without any backdoor).
    """
    import numpy as np

    want = triggered_labels(y, secret)
    keep = want != np.asarray(y)
    if not keep.any():
        raise ProvscanError("no inputs outside the target class to measure the attack on")
    pred_trig = np.asarray(predict(apply_trigger(x[keep], secret)))
    pred_clean = np.asarray(predict(x))
    return {"asr": float((pred_trig == want[keep]).mean()), "n": int(keep.sum()),
            "clean_accuracy": float((pred_clean == np.asarray(y)).mean())}
