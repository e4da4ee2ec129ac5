"""Built-in target openers: provscan classifier dirs, Hugging Face dirs, torch files, endpoints.

Safe loading rules (docs/safety.md): every pickle-based file is re-scanned here right before it
is loaded and refused unless the scan says ``safe``; torch files load only through
``torch.load(weights_only=True)`` (torch ≥ 2.10, refused when ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
is set); transformers loads with ``trust_remote_code=False`` and ``local_files_only=True``. A
checkpoint may name only factories registered through ``register_model_factories``; the user may
name any ``module:callable`` with ``--model-factory`` (importing code the user chose).
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import provscan
from provscan.classifier_card import MODEL_CARD, build_from_card
from provscan.errors import ProvscanError, UnsafeCheckpointError
from provscan.safety.report import SafetyVerdict
from provscan.safety.scan import scan_file
from provscan.targets.base import (
    ClassifierTarget,
    EncoderTarget,
    LMTarget,
    OpenOptions,
    Target,
    TextClassifierTarget,
    resolve_device,
    resolve_dtype,
)

if TYPE_CHECKING:
    from provscan.plugins import Host

TORCH_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt"}
MIN_TORCH = (2, 10)
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
              "pytorch_model.bin.index.json")


@provscan.hookimpl(trylast=True)
def open_target(location: str, options: OpenOptions, host: Host) -> Target | None:
    if location.startswith(("http://", "https://")):
        from provscan.targets.endpoint import open_endpoint

        return open_endpoint(location, model_name=options.extra.get("model_name"), kind=options.kind,
                             batch_size=options.batch_size, api=options.extra.get("api"),
                             limits=options.extra.get("endpoint_limits"))
    path = Path(location)
    if path.is_dir():
        if (path / MODEL_CARD).exists():
            return open_provscan_classifier(path, options, host)
        if (path / "config.json").exists():
            return open_hf_dir(path, options)
        return None
    if path.is_file() and (path.suffix.lower() in TORCH_SUFFIXES or path.suffix == ".safetensors"):
        return open_state_dict_file(path, options, host)
    return None


def _common(path: Path, fmt: str, options: OpenOptions) -> dict[str, Any]:
    device = resolve_device(options.device)
    return dict(location=str(path), format=fmt, device=device,
                dtype=resolve_dtype(options.dtype, device), batch_size=options.batch_size)


# --- safe loading primitives -------------------------------------------------------------------
def require_safe(path: Path, rel: str | None = None) -> int:
    """Re-scan one file right before loading it; anything but ``safe`` refuses the load.

    Returns the number of tensor elements the file holds (0 when it holds no tensors).
    """
    result = scan_file(rel or path.name, path)
    if result.verdict != SafetyVerdict.SAFE:
        why = "; ".join(result.findings[:2]) or "not understood"
        raise UnsafeCheckpointError(f"{rel or path.name}: file-safety verdict {result.verdict.value} ({why}); not loaded")
    return int(result.info.get("parameters", 0))


def check_declared_size(build: Any, stored: int, what: str) -> None:
    """Refuse, before anything is allocated, a model whose declared size exceeds its weights.

    ``build()`` constructs the model from the checkpoint's declared configuration; it is run on
    torch's ``meta`` device (shapes only, no memory). A model with more parameters than the weight
    files hold elements could not be filled by them: loading it would allocate (and initialise)
    memory that the checkpoint only declares, e.g. a card saying ``hidden=30000000``. A builder
    that cannot run on the meta device is left to the normal load.
    """
    import torch

    try:
        with torch.device("meta"):
            module = build()
        declared = sum(p.numel() for p in module.parameters())
    except ProvscanError:
        raise
    except Exception:  # noqa: BLE001 - factories that cannot build on meta are built normally
        return
    if declared > stored:
        raise ProvscanError(f"{what} declares a model of {declared:,} parameters but the weights hold "
                            f"{stored:,} values: not built (the declared size is not backed by weights)")


def check_torch_load_policy() -> None:
    """torch ≥ 2.10 and weights-only loading that nobody forced off."""
    import torch

    if os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "").strip() not in ("", "0"):
        raise ProvscanError("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set: refusing to load pickle-based checkpoints")
    version = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
    if version < MIN_TORCH:
        raise ProvscanError(f"torch {torch.__version__} is too old to load pickle-based checkpoints safely "
                            f"(need >= {'.'.join(map(str, MIN_TORCH))})")


def load_torch_weights(path: Path) -> Any:
    """``torch.load(weights_only=True)`` of a file that passed the safety scan."""
    import torch

    check_torch_load_policy()
    require_safe(path)
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise ProvscanError(f"{path.name}: torch.load(weights_only=True) failed: {str(exc).splitlines()[0]}") from None


# --- provscan classifier dirs ------------------------------------------------------------------
def open_provscan_classifier(path: Path, options: OpenOptions, host: Host) -> ClassifierTarget:
    from safetensors.torch import load_file

    try:
        card = json.loads((path / MODEL_CARD).read_text())
    except ValueError as exc:
        raise ProvscanError(f"{path / MODEL_CARD}: not valid JSON ({exc})") from None
    if not isinstance(card, dict) or not isinstance(card.get("input_shape"), list):
        raise ProvscanError(f"{path / MODEL_CARD}: needs factory, num_classes and input_shape")
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ProvscanError(f"{path}: no model.safetensors")
    stored = require_safe(weights)
    factories = host.model_factories()
    check_declared_size(lambda: build_from_card(card, factories), stored, MODEL_CARD)
    module = build_from_card(card, factories)
    _load_into(module, load_file(str(weights)), path, card["factory"])
    return ClassifierTarget(module, card["num_classes"], tuple(card["input_shape"]),
                            info={"parameters": sum(p.numel() for p in module.parameters()),
                                  "factory": card["factory"]}, **_common(path, "provscan-classifier", options))


def _load_into(module: Any, state: Any, path: Path, factory: str) -> None:
    if not isinstance(state, dict):
        raise ProvscanError(f"{path}: not a state dict (a {type(state).__name__})")
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ProvscanError(f"{path}: weights do not fit factory {factory!r} ({str(exc).splitlines()[-1].strip()})") from None
    if missing or unexpected:
        raise ProvscanError(f"{path}: weights do not fit factory {factory!r} "
                            f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})")


# --- plain state dict + --model-factory --------------------------------------------------------
def resolve_factory(spec: str, host: Host) -> Any:
    """``module:callable`` (imported: the user named it) or a factory registered on ``host``."""
    registered = host.model_factories()
    if spec in registered:
        return registered[spec]
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        known = ", ".join(sorted(registered)) or "none"
        raise ProvscanError(f"--model-factory {spec!r}: expected module:callable or a registered name ({known})")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ProvscanError(f"--model-factory {spec!r}: {exc}") from None
    if not callable(obj):
        raise ProvscanError(f"--model-factory {spec!r} is not callable")
    return obj


def open_state_dict_file(path: Path, options: OpenOptions, host: Host) -> ClassifierTarget:
    """A single weights file (torch or safetensors) plus the architecture named by the user.

    The factory is called with no arguments (or ``options.extra["factory_config"]``) and returns an
    ``nn.Module``; ``num_classes`` / ``input_shape`` come from the options (``--num-classes``,
    ``--input-shape``, or inferred by the scan from a detector's data), else from attributes of that
    name on the module, else ``num_classes`` from its last ``nn.Linear``. ``--input-mean`` /
    ``--input-std`` fold the model's input normalisation in front of it (detectors always feed
    images in [0, 1]).
    """
    import torch

    state: Any
    if not options.model_factory:
        raise ProvscanError(f"{path.name}: a plain weights file needs --model-factory module:callable")
    factory = resolve_factory(options.model_factory, host)
    try:
        module = factory(**dict(options.extra.get("factory_config") or {}))
    except TypeError as exc:
        raise ProvscanError(f"--model-factory {options.model_factory!r}: {exc}") from None
    if not isinstance(module, torch.nn.Module):
        raise ProvscanError(f"--model-factory {options.model_factory!r} returned a {type(module).__name__}, not a torch module")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        require_safe(path)
        state = load_file(str(path))
    else:
        state = load_torch_weights(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    _load_into(module, state, path, options.model_factory)
    num_classes = (options.num_classes or options.extra.get("num_classes")
                   or getattr(module, "num_classes", None))
    if num_classes is None:
        linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
        num_classes = linears[-1].out_features if linears else None
    shape = options.input_shape or options.extra.get("input_shape") or getattr(module, "input_shape", None)
    if num_classes is None or shape is None:
        raise ProvscanError(f"{path.name}: cannot tell the model's classes and input shape "
                            "(give --num-classes and --input-shape C,H,W, or module attributes "
                            "num_classes and input_shape)")
    shape = tuple(int(s) for s in shape)
    fmt = "safetensors" if path.suffix == ".safetensors" else "torch"
    info = {"parameters": sum(p.numel() for p in module.parameters()), "factory": options.model_factory}
    if options.input_mean is not None or options.input_std is not None:
        info["normalisation"] = {"mean": list(options.input_mean or (0.0,)),
                                 "std": list(options.input_std or (1.0,))}
    return ClassifierTarget(module, int(num_classes), shape, info=info,
                            preprocess=normaliser(options.input_mean, options.input_std, shape[0]),
                            **_common(path, fmt, options))


def normaliser(mean: tuple[float, ...] | None, std: tuple[float, ...] | None, channels: int) -> Any:
    """``(x - mean) / std`` per channel on inputs in [0, 1], or None when neither is given."""
    if mean is None and std is None:
        return None
    import torch

    def per_channel(values: tuple[float, ...] | None, default: float, name: str) -> torch.Tensor:
        vals = list(values or (default,))
        if len(vals) not in (1, channels):
            raise ProvscanError(f"--input-{name}: {len(vals)} values for {channels} channels")
        return torch.tensor(vals * (channels if len(vals) == 1 else 1)).view(1, -1, 1, 1)

    mean_t, std_t = per_channel(mean, 0.0, "mean"), per_channel(std, 1.0, "std")

    def preprocess(x: torch.Tensor) -> torch.Tensor:
        return (x - mean_t.to(x.device, x.dtype)) / std_t.to(x.device, x.dtype)

    return preprocess


# --- Hugging Face directories ------------------------------------------------------------------
#: ``model_type`` values of bidirectional text encoders (a bare ``*Model`` of these is an encoder)
ENCODER_MODEL_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra", "deberta",
                       "deberta-v2", "mpnet", "camembert", "modernbert", "ernie", "nomic_bert",
                       "megatron-bert", "rembert", "xlm", "flaubert", "roformer", "luke", "data2vec-text"}
#: sentence-transformers' module list (its presence makes a directory an encoder)
ST_MODULES = "modules.json"
#: sentence-transformers pooling flags (``pooling_mode_<name>``); provscan implements cls, mean, max
POOLING_MODES = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens",
                 "lasttoken")


def hf_kind(config: dict[str, Any], sentence_transformers: bool = False) -> str:
    """Target kind of a transformers config, from its JSON alone (nothing imported).

    ``sentence_transformers``: the directory has a sentence-transformers ``modules.json``.
    """
    archs = [str(a) for a in config.get("architectures") or []]
    if any(a.endswith(("ForImageClassification", "ForSequenceClassification")) for a in archs):
        return "classifier"
    if config.get("is_encoder_decoder") or any(a.endswith("ForConditionalGeneration") for a in archs):
        return "seq2seq"
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return "causal-lm"
    if sentence_transformers or any(a.endswith("ForMaskedLM") for a in archs):
        return "encoder"
    if str(config.get("model_type", "")) in ENCODER_MODEL_TYPES and any(a.endswith("Model") for a in archs):
        return "encoder"
    return "unknown"


def hf_dir_kind(path: Path) -> str:
    """:func:`hf_kind` of a directory (its ``config.json`` and ``modules.json``, read as JSON)."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return "unknown"
    return hf_kind(config if isinstance(config, dict) else {}, (path / ST_MODULES).is_file())


def hf_weight_files(path: Path) -> tuple[list[Path], bool]:
    """The weight files a transformers load would read, and whether they are safetensors."""
    for index_name, safe in (("model.safetensors.index.json", True), ("pytorch_model.bin.index.json", False)):
        index = path / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
                names = sorted(set(weight_map.values()))
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ProvscanError(f"{index}: not a valid shard index") from None
            files = []
            for n in names:
                f = (path / n).resolve()
                if f.parent != path.resolve() or not f.is_file():
                    raise ProvscanError(f"{index.name} names shard {n!r}, which is not a file of {path.name}")
                files.append(f)
            return files, safe
    if (path / "model.safetensors").is_file():
        return [path / "model.safetensors"], True
    if (path / "pytorch_model.bin").is_file():
        return [path / "pytorch_model.bin"], False
    raise ProvscanError(f"{path}: no weights (expected one of {', '.join(HF_WEIGHTS)})")


def open_hf_dir(path: Path, options: OpenOptions) -> Target:
    import transformers

    from provscan.progress import is_quiet

    if is_quiet():
        transformers.utils.logging.disable_progress_bar()

    try:
        config = json.loads((path / "config.json").read_text())
    except ValueError as exc:
        raise ProvscanError(f"{path / 'config.json'}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ProvscanError(f"{path / 'config.json'}: not a JSON object")
    kind = options.kind or hf_kind(config, (path / ST_MODULES).is_file())
    files, safe = hf_weight_files(path)
    stored = sum(require_safe(f, f.name) for f in files)
    if not safe:
        check_torch_load_policy()
    common = _common(path, "hf-dir", options)
    load: dict[str, Any] = dict(local_files_only=True, trust_remote_code=False, use_safetensors=safe)
    try:
        auto = {"causal-lm": transformers.AutoModelForCausalLM, "seq2seq": transformers.AutoModelForSeq2SeqLM}.get(kind)
        if auto is not None:
            hf_config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
            check_declared_size(lambda: auto.from_config(hf_config, trust_remote_code=False), stored, "config.json")
        if kind == "encoder":
            return _encoder(path, stored, load, common)
        if kind == "causal-lm":
            model = transformers.AutoModelForCausalLM.from_pretrained(str(path), **load)
        elif kind == "seq2seq":
            model = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(path), **load)
        elif kind == "classifier" and any(str(a).endswith("ForImageClassification") for a in config.get("architectures") or []):
            model = transformers.AutoModelForImageClassification.from_pretrained(str(path), **load)
            return _image_classifier(path, model, common)
        elif kind == "classifier":
            model = transformers.AutoModelForSequenceClassification.from_pretrained(str(path), **load)
            tok = _tokenizer(path)
            return TextClassifierTarget(model, tok, model.config.num_labels,
                                        info=_hf_info(model), **common)
        else:
            archs = config.get("architectures")
            raise ProvscanError(f"{path}: cannot tell what kind of model this is (architectures={archs}); "
                                "pass the kind explicitly")
    except (OSError, ValueError, KeyError) as exc:
        raise ProvscanError(f"{path}: transformers could not load it ({str(exc).splitlines()[0]})") from None
    return LMTarget(model, _tokenizer(path), kind=kind, info=_hf_info(model), **common)


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ProvscanError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(value, dict) and not isinstance(value, list):
        raise ProvscanError(f"{path}: not a JSON object or list")
    return value if isinstance(value, dict) else {"modules": value}


def sentence_transformers_layout(path: Path) -> tuple[str, bool, int | None]:
    """(pooling, normalize, max_seq_length) from a sentence-transformers directory.

    Only the module types below are understood (none of them runs code): ``Transformer`` at the
    directory root, ``Pooling`` (cls, mean or max tokens), ``Normalize``. Anything else in
    ``modules.json`` (dense layers, custom modules) is refused: the vectors would not be the
    model's. Without ``modules.json``: mean pooling, not normalised.
    """
    if not (path / ST_MODULES).is_file():
        return "mean", False, None
    modules = _read_json_object(path / ST_MODULES).get("modules")
    if not isinstance(modules, list):
        raise ProvscanError(f"{path / ST_MODULES}: expected a list of modules")
    pooling, normalize = "mean", False
    for m in modules:
        kind = str(m.get("type", "")) if isinstance(m, dict) else ""
        sub = str(m.get("path", "")) if isinstance(m, dict) else ""
        short = kind.rsplit(".", 1)[-1]
        if kind.startswith("sentence_transformers.models.") and short == "Transformer" and sub in ("", "."):
            continue
        if kind.startswith("sentence_transformers.models.") and short == "Normalize":
            normalize = True
            continue
        if kind.startswith("sentence_transformers.models.") and short == "Pooling":
            pool_cfg = (path / sub / "config.json").resolve()
            if path.resolve() not in pool_cfg.parents:
                raise ProvscanError(f"{ST_MODULES}: pooling path {sub!r} leaves the directory")
            cfg = _read_json_object(pool_cfg)
            modes = [mode for mode in POOLING_MODES if cfg.get(f"pooling_mode_{mode}")]
            modes = [mode.removesuffix("_tokens").removesuffix("_token") for mode in modes]
            if modes not in (["cls"], ["mean"], ["max"]):
                raise ProvscanError(f"{sub}/config.json: pooling {modes or 'none'} is not supported "
                                    "(one of cls, mean or max tokens)")
            pooling = modes[0]
            continue
        raise ProvscanError(f"{ST_MODULES}: module {kind or m!r} at {sub!r} is not supported "
                            "(Transformer at the root, Pooling, Normalize)")
    max_len = None
    if (path / "sentence_bert_config.json").is_file():
        value = _read_json_object(path / "sentence_bert_config.json").get("max_seq_length")
        max_len = int(value) if isinstance(value, int) and value > 0 else None
    return pooling, normalize, max_len


def _encoder(path: Path, stored: int, load: dict[str, Any], common: dict[str, Any]) -> EncoderTarget:
    """A text encoder: the base model (``AutoModel``, any head dropped) + its pooling."""
    import transformers

    pooling, normalize, max_len = sentence_transformers_layout(path)
    hf_config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    check_declared_size(lambda: transformers.AutoModel.from_config(hf_config, trust_remote_code=False),
                        stored, "config.json")
    model = transformers.AutoModel.from_pretrained(str(path), **load)
    tok = _tokenizer(path)
    limit = int(getattr(model.config, "max_position_embeddings", 0) or 0) or None
    tok_limit = getattr(tok, "model_max_length", None)
    limits = [v for v in (max_len, limit, tok_limit if isinstance(tok_limit, int) and tok_limit < 10**6 else None) if v]
    return EncoderTarget(model, tok, pooling=pooling, normalize=normalize,
                         max_length=min(limits) if limits else None,
                         info={**_hf_info(model), "normalize": normalize}, **common)


def _tokenizer(path: Path) -> Any:
    import transformers

    try:
        return transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ProvscanError(f"{path}: no usable tokenizer ({str(exc).splitlines()[0]})") from None


def _hf_info(model: Any) -> dict[str, Any]:
    return {"architecture": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters())}


def _image_classifier(path: Path, model: Any, common: dict[str, Any]) -> ClassifierTarget:
    """Inputs in [0, 1], (N, C, H, W) → resized to the model's size, normalised as its processor says."""
    import torch
    import torch.nn.functional as F

    cfg = model.config
    size = int(getattr(cfg, "image_size", 224))
    channels = int(getattr(cfg, "num_channels", 3))
    mean, std = [0.5] * channels, [0.5] * channels
    proc = path / "preprocessor_config.json"
    if proc.is_file():
        try:
            pc = json.loads(proc.read_text())
            if pc.get("do_normalize", True):
                mean, std = list(pc.get("image_mean", mean)), list(pc.get("image_std", std))
            else:
                mean, std = [0.0] * channels, [1.0] * channels
        except ValueError:
            raise ProvscanError(f"{proc}: not valid JSON") from None
    mean_t = torch.tensor(mean).view(1, -1, 1, 1)
    std_t = torch.tensor(std).view(1, -1, 1, 1)

    def preprocess(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False)
        return (x - mean_t.to(x.device)) / std_t.to(x.device)

    return ClassifierTarget(model, int(cfg.num_labels), (channels, size, size), preprocess=preprocess,
                            info=_hf_info(model), **common)
