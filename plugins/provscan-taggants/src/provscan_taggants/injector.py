"""The ``taggants`` injector: ``provscan inject taggants DATA --out PROTECTED --secret SECRET``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from provscan import Injector, Param, ProvscanError, compute_manifest
from provscan.datasets import load_dataset, save_dataset
from provscan_taggants import __version__
from provscan_taggants.protect import MODES, OBJECTIVES, TaggantConfig, protect
from provscan_taggants.secret import write_secret

if TYPE_CHECKING:
    import numpy as np

_D = TaggantConfig()


class TaggantsInjector(Injector):
    id = "taggants"
    version = __version__
    description = ("Protect a dataset with data taggants: secret out-of-distribution keys and "
                   "clean-label perturbations crafted by gradient matching (or, with --mode "
                   "watermark, a visible dirty-label key watermark). Writes the protected copy "
                   "and the secret needed by `provscan verify --detector taggants`.")
    params = (
        Param("mode", str, "clean-label", "clean-label (labels untouched) or watermark (dirty-label, visible baseline)", MODES),
        Param("keys", int, _D.keys, "number of secret keys K", ge=1, le=100_000),
        Param("budget", float, None, "fraction of samples modified (default 0.10 clean-label, 0.03 watermark)",
              gt=0, le=0.5),
        Param("eps", float, _D.eps, "l-infinity bound of the perturbations, in 1/255 units",
              gt=0, le=255),
        Param("steps", int, _D.steps, "signed-Adam steps per restart", ge=1, le=100_000),
        Param("restarts", int, 1, "crafting restarts (the lowest matching loss is kept)",
              ge=1, le=1000),
        Param("objective", str, "per-key", "per-key (one cosine per key) or sum (the paper's)", OBJECTIVES),
        Param("surrogate", str, "small-cnn", "registered model factory used as surrogate"),
        Param("surrogate_epochs", int, _D.surrogate_epochs, "training epochs of the surrogate",
              ge=0, le=10_000),
        Param("retrain_every", int, _D.retrain_every,
              "retrain the surrogate on the poisoned data every N crafting steps (0: never)", ge=0),
        Param("ensemble", int, _D.ensemble, "surrogates trained with different seeds", ge=1, le=100),
        Param("snapshots", int, _D.snapshots, "checkpoints along each surrogate's training used too",
              ge=1, le=1000),
        Param("blend", float, 0.5, "watermark mode: weight of the key blended into a sample",
              gt=0, le=1),
        Param("device", str, "auto", "auto, cpu or cuda"),
    )

    def apply(self, data: Path, out: Path, secret: Path, params: dict[str, Any],
              rng: np.random.Generator) -> dict[str, Any]:
        data, out, secret = Path(data), Path(out), Path(secret)
        if _inside(secret, out) or _inside(secret, data):
            raise ProvscanError("the secret file must not be written inside the dataset")
        if out.exists():
            raise ProvscanError(f"output {out} already exists (choose another --out)")
        if secret.exists():
            raise ProvscanError(f"secret file {secret} already exists (refusing to overwrite a key)")
        ds = load_dataset(data)
        cfg = TaggantConfig(**{k: v for k, v in params.items() if v is not None})
        seed = int(rng.integers(0, 2**31 - 1))
        result = protect(ds, cfg, seed)
        save_dataset(result.data, out)
        result.secret.protected_sha256 = compute_manifest(out).root_sha256
        write_secret(result.secret, secret)
        return {**result.summary, "out": str(out), "secret": str(secret),
                "protected_sha256": result.secret.protected_sha256}


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return folder.is_dir() or not folder.exists() or path.resolve() == folder.resolve()
