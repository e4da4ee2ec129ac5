"""Reference clean models and the conformal null they give (in the manner of Xiang et al.'s CBD).

A detector reduces a model to one scalar score (larger = more suspicious). The same score computed
on ``n`` reference models, trained the same way as the model under test but on clean data, gives
the conformal p-value ``(1 + #{ref >= score}) / (n + 1)``, valid in finite samples whenever the
tested model is exchangeable with the references under the null (a clean model from the same
recipe). The references are given as a directory of checkpoints, or as a JSON file of their scores
written by ``provscan backdoor score-references`` (so they are scored once).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provscan import ClassifierTarget, OpenOptions, ProvscanError

REFERENCES_FORMAT = "provscan-backdoor-references"


def statistic_key(detector_id: str, version: str, params: dict[str, Any], stat_params: tuple[str, ...]) -> dict[str, Any]:
    """What must match between the tested model's score and the references' scores."""
    return {"detector": detector_id, "detector_version": version,
            "params": {k: params[k] for k in stat_params}}


WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
MAX_REFERENCES = 10_000


def reference_dirs(root: Path) -> list[Path]:
    """The reference checkpoints ``root`` names, sorted by name: checkpoint directories and
    weight files (``.safetensors``, ``.pt``, ...) directly inside a directory, or the paths listed
    one per line in a text file (relative to the file; ``#`` starts a comment)."""
    if root.is_file():
        try:
            lines = root.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ProvscanError(f"references {root}: not a readable list of checkpoints ({exc})") from None
        paths = [root.parent / line.strip() for line in lines[:MAX_REFERENCES + 1]
                 if line.strip() and not line.lstrip().startswith("#")]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise ProvscanError(f"references {root}: no such checkpoint {missing[0]}")
    else:
        paths = sorted(p for p in root.iterdir()
                       if (p.is_dir() and ((p / "provscan_model.json").exists() or (p / "config.json").exists()))
                       or (p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES))
    if not paths:
        raise ProvscanError(f"references {root}: no model checkpoints found")
    if len(paths) > MAX_REFERENCES:
        raise ProvscanError(f"references {root}: more than {MAX_REFERENCES} checkpoints")
    return paths


def open_reference(host: Any, path: Path, like: ClassifierTarget) -> ClassifierTarget:
    """Open a reference model through ``host`` (digest, file-safety scan and load, one path), with
    the options the model under test was opened with (architecture factory, input shape and
    normalisation), so a user's own architecture works for references too."""
    import dataclasses

    from provscan import open_checkpoint

    dtype = str(like.dtype).replace("torch.", "")
    base = like.options if isinstance(like.options, OpenOptions) else OpenOptions()
    opts = dataclasses.replace(base, device=str(like.device), dtype=dtype, batch_size=like.batch_size,
                               input_shape=like.input_shape, num_classes=like.num_classes)
    if host is None:
        raise ProvscanError(f"reference {path}: no plugin host to open it with (open the model "
                            "under test with provscan.open_checkpoint)")
    opened = open_checkpoint(host, path, opts)
    if opened.target is None:
        raise ProvscanError(f"reference {path}: {opened.load_error}")
    ref = opened.target
    if not isinstance(ref, ClassifierTarget) or ref.module is None:
        raise ProvscanError(f"reference {path}: not a white-box image classifier")
    if ref.num_classes != like.num_classes or ref.input_shape != like.input_shape:
        raise ProvscanError(f"reference {path}: {ref.num_classes} classes, input {ref.input_shape}; "
                            f"the model under test has {like.num_classes} classes, input {like.input_shape}")
    return ref


def load_reference_scores(location: str, key: dict[str, Any], like: ClassifierTarget,
                          score: Callable[[ClassifierTarget], float]) -> tuple[list[float], str]:
    """Reference scores from a scores file (checked against ``key``) or a directory of models."""
    path = Path(location)
    if path.is_dir() or path.suffix == ".txt":
        dirs = reference_dirs(path)
        return [score(open_reference(like.host, d, like)) for d in dirs], f"{len(dirs)} models in {path.name}"
    if not path.is_file():
        raise ProvscanError(f"references {path}: no such file or directory")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ProvscanError(f"references {path}: not a readable JSON file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != REFERENCES_FORMAT:
        raise ProvscanError(f"references {path}: not a {REFERENCES_FORMAT} file")
    if doc.get("statistic") != key:
        raise ProvscanError(f"references {path}: scored with {doc.get('statistic')}, but this run uses {key}; "
                            "rescore them with the same parameters")
    if doc.get("num_classes") != like.num_classes or tuple(doc.get("input_shape", ())) != like.input_shape:
        raise ProvscanError(f"references {path}: made for {doc.get('num_classes')} classes, input "
                            f"{doc.get('input_shape')}; the model under test differs")
    return [float(s) for s in doc["scores"]], f"{len(doc['scores'])} scores in {path}"


def scores_document(key: dict[str, Any], like: ClassifierTarget, models: list[str],
                    scores: list[float]) -> dict[str, Any]:
    return {"format": REFERENCES_FORMAT, "version": 1, "statistic": key,
            "num_classes": like.num_classes, "input_shape": list(like.input_shape),
            "models": models, "scores": scores,
            "key_sha256": hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()}
