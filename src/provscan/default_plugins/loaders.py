"""Built-in target openers: provscan classifier dirs, Hugging Face dirs.

(Interim: torch files, ``--model-factory``, sharded checkpoints and endpoints land with the
targets work.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import provscan
from provscan.errors import ProvscanError
from provscan.models import MODEL_CARD, build_from_card
from provscan.targets.base import (
    ClassifierTarget,
    LMTarget,
    OpenOptions,
    Target,
    resolve_device,
    resolve_dtype,
)


@provscan.hookimpl(trylast=True)
def open_target(location: str, options: OpenOptions) -> Target | None:
    if location.startswith(("http://", "https://")):
        from provscan.targets.endpoint import open_endpoint

        return open_endpoint(location, model_name=options.extra.get("model_name"), kind=options.kind,
                             batch_size=options.batch_size, api=options.extra.get("api"))
    path = Path(location)
    if not path.is_dir():
        return None
    if (path / MODEL_CARD).exists():
        return open_provscan_classifier(path, options)
    if (path / "config.json").exists():
        return open_hf_dir(path, options)
    return None


def _common(path: Path, fmt: str, options: OpenOptions) -> dict[str, Any]:
    device = resolve_device(options.device)
    return dict(location=str(path), format=fmt, device=device,
                dtype=resolve_dtype(options.dtype, device), batch_size=options.batch_size)


def open_provscan_classifier(path: Path, options: OpenOptions) -> ClassifierTarget:
    from safetensors.torch import load_file

    from provscan.plugins import get_host

    try:
        card = json.loads((path / MODEL_CARD).read_text())
    except ValueError as exc:
        raise ProvscanError(f"{path / MODEL_CARD}: not valid JSON ({exc})") from None
    module = build_from_card(card, get_host().model_factories())
    state = load_file(str(path / "model.safetensors"))
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ProvscanError(f"{path}: weights do not fit factory {card['factory']!r} "
                            f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})")
    return ClassifierTarget(module, card["num_classes"], tuple(card["input_shape"]),
                            info={"parameters": sum(p.numel() for p in module.parameters()),
                                  "factory": card["factory"]}, **_common(path, "provscan-classifier", options))


def open_hf_dir(path: Path, options: OpenOptions) -> Target:
    import transformers

    cfg = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    common = _common(path, "hf-dir", options)
    load = dict(local_files_only=True, trust_remote_code=False, use_safetensors=True)
    if cfg.is_encoder_decoder:
        model = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(path), **load)
        tok = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        return LMTarget(model, tok, kind="seq2seq", info={"architecture": type(model).__name__}, **common)
    archs = cfg.architectures or []
    if any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs):
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path), **load)
        tok = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        return LMTarget(model, tok, kind="causal-lm", info={"architecture": type(model).__name__}, **common)
    raise ProvscanError(f"{path}: cannot tell what kind of model this is (architectures={archs})")
