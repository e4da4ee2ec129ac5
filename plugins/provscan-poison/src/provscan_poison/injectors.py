"""BadNets, blended and clean-label poisoning injectors.

Each reads an image dataset (``.npz`` or image folder) through :mod:`provscan.datasets`, stamps a
trigger on a seeded random subset, writes the new dataset atomically to ``out`` and the secret
(trigger, target, poisoned indices) to ``secret``. The input is only read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from provscan import Injector, Param, ProvscanError, atomic_write_text
from provscan.datasets import ImageDataset, load_dataset, quantize_like, save_dataset
from provscan_poison.triggers import (
    POSITIONS,
    SECRET_FORMAT,
    Trigger,
    blend_pattern,
    patch_trigger,
    triggered_labels,
)

if TYPE_CHECKING:
    import numpy as np

MODES = ("all-to-one", "all-to-all")

COMMON = (
    Param("rate", float, 0.1, "Fraction of eligible samples to poison, in (0, 1].", gt=0, le=1),
    Param("target", int, 0, "Target class index (all-to-one and clean-label).", ge=0),
)
PATCH = (
    Param("patch_size", int, 2, "Side of the square patch, in pixels.", ge=1, le=4096),
    Param("position", str, "bottom-right", "Corner of the patch.", POSITIONS),
    Param("colour", str, "1", "Patch colour: one value or one per channel in [0, 1], or 'checker'."),
)
MODE = Param("mode", str, "all-to-one", "all-to-one: every poisoned label becomes the target; "
             "all-to-all: label y becomes y+1 mod K.", MODES)


class _PoisonInjector(Injector):
    """Shared flow: load → check → build trigger → choose indices → write dataset then secret."""

    clean_label: ClassVar[bool] = False

    def trigger(self, shape: tuple[int, int, int], params: dict[str, Any],
                rng: np.random.Generator) -> Trigger:
        raise NotImplementedError

    def prepare(self, x: np.ndarray, params: dict[str, Any], rng: np.random.Generator,
                ds: ImageDataset) -> np.ndarray:
        """Change the chosen images before the trigger is stamped (clean-label hardening)."""
        return x

    def apply(self, data: Path, out: Path, secret: Path, params: dict[str, Any],
              rng: np.random.Generator) -> dict[str, Any]:
        import numpy as np

        data, out, secret = Path(data), Path(out), Path(secret)
        if out.exists():
            raise ProvscanError(f"output {out} already exists (choose another --out)")
        if secret.exists():
            raise ProvscanError(f"secret file {secret} already exists (refusing to overwrite a key)")
        ds = load_dataset(data)
        if ds.storage != "folder" and out.suffix != ".npz":
            raise ProvscanError(f"--out {out}: an .npz dataset must be written to a path ending in .npz")
        rate, target = float(params["rate"]), int(params["target"])
        mode = params.get("mode", "all-to-one")
        if not 0.0 < rate <= 1.0:
            raise ProvscanError(f"rate {rate} is outside (0, 1]")
        if not 0 <= target < ds.num_classes:
            raise ProvscanError(f"unknown target class {target}: the dataset has classes 0..{ds.num_classes - 1}")
        trig = self.trigger(ds.input_shape, params, rng)
        eligible = self.eligible(ds, target, mode)
        if len(eligible) == 0:
            raise ProvscanError("no samples are eligible for poisoning (empty target class?)")
        n_poison = max(1, int(round(rate * len(eligible))))
        chosen = np.sort(rng.choice(eligible, size=n_poison, replace=False))
        x, y = ds.x.copy(), ds.y.copy()
        x[chosen] = quantize_like(ds, trig.apply(self.prepare(x[chosen], params, rng, ds)))
        info = {"target": target, "mode": mode, "num_classes": ds.num_classes}
        if not self.clean_label:
            y[chosen] = triggered_labels(y[chosen], info)
        new = ds.replace(x, y)
        if ds.storage == "folder":
            new.names = _unique_names(ds, y, chosen)
        doc = {
            "format": SECRET_FORMAT, "version": 1, "injector": self.id,
            "injector_version": self.version, **info, "clean_label": self.clean_label,
            "input_shape": list(ds.input_shape), "rate": rate, "params": params,
            "poisoned_indices": chosen.tolist(), "n_samples": len(y),
            "source": {"path": str(data), "sha256": _digest(data)}, "output": str(out),
            "trigger": trig.to_json(),
        }
        save_dataset(new, out)
        try:
            atomic_write_text(secret, json.dumps(doc, indent=1) + "\n", mode=0o600)
        except BaseException:
            _remove(out)
            raise
        change = np.abs(x[chosen] - ds.x[chosen]).mean()
        return {"injector": self.id, "out": str(out), "secret": str(secret), "n_samples": len(y),
                "n_poisoned": int(n_poison), "rate": rate, "target": target, "mode": mode,
                "trigger_mask_l1": float(trig.mask.sum()), "mean_abs_change": float(change)}

    def eligible(self, ds: ImageDataset, target: int, mode: str) -> np.ndarray:
        import numpy as np

        if self.clean_label:
            return np.flatnonzero(ds.y == target)
        if mode == "all-to-all":
            return np.arange(len(ds.y))
        return np.flatnonzero(ds.y != target)


class BadNets(_PoisonInjector):
    id = "badnets"
    description = "BadNets (Gu et al. 2017): a square patch in a corner, poisoned labels."
    params = (*COMMON, MODE, *PATCH)

    def trigger(self, shape: tuple[int, int, int], params: dict[str, Any],
                rng: np.random.Generator) -> Trigger:
        return patch_trigger(shape, int(params["patch_size"]), params["position"], params["colour"])


class Blended(_PoisonInjector):
    id = "blended"
    description = "Blended (Chen et al. 2017): a full-image pattern mixed in at alpha, poisoned labels."
    params = (*COMMON, MODE,
              Param("alpha", float, 0.2, "Blend weight of the pattern, in (0, 1].", gt=0, le=1),
              Param("pattern", str, "noise", "noise (seeded), stripes, or an image file of the images' size."))

    def trigger(self, shape: tuple[int, int, int], params: dict[str, Any],
                rng: np.random.Generator) -> Trigger:
        import numpy as np

        alpha = float(params["alpha"])
        if not 0.0 < alpha <= 1.0:
            raise ProvscanError(f"alpha {alpha} is outside (0, 1]")
        return Trigger(np.full(shape, alpha, dtype=np.float32), blend_pattern(shape, params["pattern"], rng))


class CleanLabel(_PoisonInjector):
    id = "clean-label"
    description = ("Clean-label patch backdoor in the manner of Turner et al. 2019: only target-class "
                   "images are poisoned, labels unchanged; each is first mixed with a random image of "
                   "another class so that its own features are less useful than the trigger.")
    clean_label = True
    params = (
        Param("rate", float, 0.5, "Fraction of the target class to poison, in (0, 1].", gt=0, le=1),
        Param("target", int, 0, "Target class index.", ge=0),
        *PATCH,
        Param("hardening", float, 0.5, "Weight of another class's image mixed into each poisoned "
              "image, in [0, 1).", ge=0, lt=1),
    )

    def trigger(self, shape: tuple[int, int, int], params: dict[str, Any],
                rng: np.random.Generator) -> Trigger:
        h = float(params["hardening"])
        if not 0.0 <= h < 1.0:
            raise ProvscanError(f"hardening {h} is outside [0, 1)")
        return patch_trigger(shape, int(params["patch_size"]), params["position"], params["colour"])

    def prepare(self, x: np.ndarray, params: dict[str, Any], rng: np.random.Generator,
                ds: ImageDataset) -> np.ndarray:
        import numpy as np

        h = float(params["hardening"])
        others = np.flatnonzero(ds.y != int(params["target"]))
        if h == 0.0 or len(others) == 0:
            return x
        mix = ds.x[rng.choice(others, size=len(x), replace=True)]
        return ((1.0 - h) * x + h * mix).astype(np.float32)


INJECTORS: tuple[type[Injector], ...] = (BadNets, Blended, CleanLabel)


def _unique_names(ds: ImageDataset, y: np.ndarray, chosen: np.ndarray) -> list[str]:
    """File names for a folder dataset in which poisoned images change class folder."""
    names = list(ds.names)
    taken = {(int(c), Path(n).name) for c, n in zip(ds.y, names)}
    for i in chosen:
        base = Path(names[i])
        if int(y[i]) == int(ds.y[i]):
            continue
        name, k = base.name, 1
        while (int(y[i]), name) in taken:
            name, k = f"{base.stem}_{k}{base.suffix}", k + 1
        taken.add((int(y[i]), name))
        names[i] = f"{ds.classes[int(y[i])]}/{name}"
    return names


def _digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a tree's relative names and contents."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
