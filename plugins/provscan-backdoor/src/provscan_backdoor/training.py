"""Library side of the ``provscan backdoor`` commands: train and score reference clean models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from provscan import ProvscanError, atomic_dir, atomic_write_text


def train_references(host: Any, clean_data: Path, out: Path, count: int, factory: str = "small-cnn",
                     epochs: int = 20, lr: float = 3e-3, seed: int = 1000) -> list[Path]:
    """Train ``count`` models on ``clean_data`` (seeds ``seed .. seed+count-1``) into ``out/ref-*``,
    written atomically as one directory. ``factory`` is looked up on ``host``."""
    from provscan import save_classifier
    from provscan.datasets import load_dataset
    from provscan.training import train_classifier

    ds = load_dataset(Path(clean_data))
    factories = host.model_factories()
    if factory not in factories:
        raise ProvscanError(f"unknown model factory {factory!r} (known: {', '.join(sorted(factories))})")
    c, h, _ = ds.input_shape
    config = {"in_channels": c, "num_classes": ds.num_classes, "image_size": h}
    paths = []
    with atomic_dir(Path(out)) as tmp:
        for i in range(count):
            module = factories[factory](**config)
            train_classifier(module, ds.x, ds.y, epochs=epochs, lr=lr, seed=seed + i)
            name = f"ref-{seed + i:05d}"
            save_classifier(module, tmp / name, factory, config, ds.num_classes, ds.input_shape)
            paths.append(Path(out) / name)
    return paths


def score_references(host: Any, references: Path, detector_id: str, given: dict[str, Any], out: Path,
                     seed: int = 0, device: str = "auto", options: Any = None) -> dict[str, Any]:
    """Compute the detector's score on every reference model and write a scores file.

    ``options`` (an :class:`provscan.OpenOptions`) opens the references: ``model_factory`` and the
    input options for plain state dicts of the user's own architecture."""
    from provscan import detector_rng, open_checkpoint, resolve_params
    from provscan_backdoor.detectors import DETECTORS, parse_classes
    from provscan_backdoor.references import (
        open_reference,
        reference_dirs,
        scores_document,
        statistic_key,
    )

    if Path(out).exists():
        raise ProvscanError(f"output {out} already exists (choose another --out)")
    known = {c.id: c for c in DETECTORS}
    cls = known.get(detector_id)
    if cls is None:
        raise ProvscanError(f"{detector_id!r} is not a provscan-backdoor detector (known: {', '.join(known)})")
    params = resolve_params(detector_id, cls.params, given)
    dirs = reference_dirs(Path(references))
    import dataclasses

    from provscan import OpenOptions

    opts = dataclasses.replace(options, device=device) if options is not None else OpenOptions(device=device)
    if opts.input_shape is None:
        opts = dataclasses.replace(opts, input_shape=cls.input_hints(params).get("input_shape"))
    first = open_checkpoint(host, dirs[0], opts).require_target()
    classes = parse_classes(params["classes"], first.num_classes)
    det = cls()
    run_seed = int(detector_rng(seed, detector_id).integers(2**31 - 1))
    scores = [det.model_score(open_reference(host, d, first), classes, params, run_seed) for d in dirs]
    doc = scores_document(statistic_key(cls.id, cls.version, params, cls.stat_params), first,
                          [d.name for d in dirs], scores)
    doc["seed"] = seed
    atomic_write_text(Path(out), json.dumps(doc, indent=1) + "\n")
    return doc
