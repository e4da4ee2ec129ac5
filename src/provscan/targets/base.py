"""Target protocol: the capabilities a detector may use, independent of where the model lives.

A target always carries its location, format, the digest manifest of the files it was loaded
from and the file-safety report. Classifier targets answer ``logits`` / ``predict_topk``; language
model targets answer ``generate`` and ``loglik``. White-box targets also expose ``module`` (a
``torch.nn.Module``); black-box ones (endpoints) leave it ``None`` and detectors that need weights
report inconclusive.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import torch

F = TypeVar("F", bound=Callable[..., Any])


def no_grad(fn: F) -> F:
    """``torch.no_grad()`` as a decorator that imports torch only when ``fn`` is called."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass
class OpenOptions:
    """How to open a target: device, dtype, batch size, custom architecture factory."""

    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 64
    model_factory: str | None = None
    kind: str | None = None  # force a target kind when a directory could be several
    extra: dict[str, Any] = field(default_factory=dict)
    # For a plain state dict with the user's own architecture (``--input-shape`` and friends):
    input_shape: tuple[int, ...] | None = None  # (C, H, W) the model takes
    num_classes: int | None = None
    input_mean: tuple[float, ...] | None = None  # per channel (or one value), on inputs in [0, 1]
    input_std: tuple[float, ...] | None = None
    #: globs of files left out of the digest, the safety scan and the load (``--ignore``)
    ignore: tuple[str, ...] = ()
    #: revision for a remote location that has revisions (``hf://org/name`` with ``--revision``)
    revision: str | None = None


@dataclass(frozen=True)
class ResolvedLocation:
    """A location resolved by a ``resolve_location`` hook to local files and a pinned identity.

    ``path`` is a private local copy (or the local cache snapshot) that is digested, scanned and
    loaded like a local checkpoint; ``identity`` pins what the location named (for example
    ``{"type": "hf", "repo_id": ..., "revision": ..., "commit": ...}`` or ``{"type": "mlflow",
    "registry": ..., "name": ..., "version": ..., "source": ...}``; string values only) and is
    recorded in the certificate subject; ``cleanup`` (when set) removes the private copy and is
    called once the scan no longer needs the files.
    """

    path: Path
    identity: dict[str, str] = field(default_factory=dict)
    cleanup: Callable[[], None] | None = None


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; ``cuda`` without CUDA is an input error."""
    import torch

    from provscan.errors import ProvscanError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ProvscanError(f"device {device!r} requested but CUDA is not available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ProvscanError(f"unknown device {device!r}") from None


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` is bfloat16 on CUDA devices that support it, float32 otherwise."""
    import torch

    from provscan.errors import ProvscanError

    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
             "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in table:
        raise ProvscanError(f"unknown dtype {dtype!r} (known: auto, {', '.join(table)})")
    return table[dtype]


class Target:
    """Base of every target. ``kind`` is one of :data:`provscan.detectors.TARGET_KINDS`.

    ``host`` is the :class:`provscan.plugins.Host` that opened the target (set by
    :func:`provscan.checkpoint.open_checkpoint` and by the scan): detectors look registries up
    and open reference models through it, never through a global.
    """

    kind: str = "files"
    host: Any = None
    options: Any = None  # the OpenOptions it was opened with (set by open_checkpoint)

    def __init__(
        self,
        location: str,
        format: str,
        manifest: Any = None,
        safety: Any = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        batch_size: int = 64,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.location = location
        self.format = format
        self.manifest = manifest
        self.safety = safety
        self.device: Any = device
        self.dtype: Any = dtype
        if device is None or dtype is None:
            self.device, self.dtype = self._default_device_dtype(device, dtype)
        self.batch_size = batch_size
        self.info = dict(info or {})

    def _default_device_dtype(self, device: Any, dtype: Any) -> tuple[Any, Any]:
        """CPU and float32 (torch objects: model targets need torch anyway)."""
        import torch

        return (torch.device("cpu") if device is None else device,
                torch.float32 if dtype is None else dtype)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "location": self.location, "format": self.format,
                "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                **self.info}


class FilesTarget(Target):
    """Only the files: for file-level detectors, or when a model could not be loaded."""

    kind = "files"

    def _default_device_dtype(self, device: Any, dtype: Any) -> tuple[Any, Any]:
        """Plain names: reading files needs no torch."""
        return ("cpu" if device is None else device, "float32" if dtype is None else dtype)


class ClassifierTarget(Target):
    """An image (or vector) classifier.

    Inputs are float arrays shaped ``(N, *input_shape)`` with values in [0, 1] (the convention of
    :mod:`provscan.datasets`); ``preprocess`` (optional) maps such a tensor to the model's input.
    """

    kind = "classifier"
    modality = "image"  # additive: "text" for TextClassifierTarget

    def __init__(
        self,
        module: torch.nn.Module | None,
        num_classes: int,
        input_shape: tuple[int, ...],
        preprocess: Any = None,
        output_getter: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.module = module
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.preprocess = preprocess
        self.output_getter = output_getter
        if module is not None:
            module.to(device=self.device, dtype=self.dtype).eval()
            for p in module.parameters():
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable logits for a tensor already on the target's device (white-box only)."""
        if self.module is None:
            raise NotImplementedError("this target has no weights (black-box)")
        if self.preprocess is not None:
            x = self.preprocess(x)
        out = self.module(x.to(self.dtype))
        if self.output_getter is not None:
            out = self.output_getter(out)
        elif hasattr(out, "logits"):
            out = out.logits
        return out.float()

    @no_grad
    def logits(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Logits for a batch of inputs, computed in batches of ``batch_size``."""
        import numpy as np
        import torch

        xt = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not torch.is_tensor(x) else x
        outs = []
        for i in range(0, len(xt), self.batch_size):
            outs.append(self.forward(xt[i : i + self.batch_size].to(self.device)).cpu())
        if not outs:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        return torch.cat(outs).numpy()

    def predict_topk(self, x: np.ndarray | torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k class indices and their softmax scores, both shaped ``(N, k)``."""
        import torch

        logits = torch.as_tensor(self.logits(x))
        probs = logits.softmax(-1)
        scores, idx = probs.topk(k, dim=-1)
        return idx.numpy(), scores.numpy()


class LMTarget(Target):
    """A causal or sequence-to-sequence language model.

    ``generate`` returns, for each prompt, ``n`` completions (the generated text only, without the
    prompt). Sampling is seeded: the same seed gives the same outputs on the same device. A prompt
    longer than the model's context leaves room for the answer by keeping its last tokens
    (``truncated_prompts`` counts them, for detectors to report); ``max_new_tokens`` that cannot
    fit the context is refused with one line.
    """

    kind = "causal-lm"

    def __init__(self, model: Any, tokenizer: Any, kind: str = "causal-lm", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.model = model
        self.tokenizer = tokenizer
        self.module = model
        self.truncated_prompts = 0  # prompts cut to fit the context (see generate)
        if model is not None:
            model.to(device=self.device, dtype=self.dtype).eval()
        if tokenizer is not None and getattr(tokenizer, "pad_token", None) is None:
            tokenizer.pad_token = tokenizer.eos_token
        if tokenizer is not None and kind == "causal-lm":
            tokenizer.padding_side = "left"

    @no_grad
    def generate(
        self,
        prompts: list[str],
        n: int = 1,
        temperature: float = 1.0,
        max_new_tokens: int = 64,
        seed: int = 0,
    ) -> list[list[str]]:
        import torch

        from provscan.progress import progress

        torch.manual_seed(seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed_all(seed)
        results: list[list[str]] = [[] for _ in prompts]
        prompt_limit = self.prompt_limit(max_new_tokens)
        expanded = [(i, p) for i, p in enumerate(prompts) for _ in range(n)]
        sample = temperature > 0
        for start in progress(range(0, len(expanded), self.batch_size), desc="generate",
                              total=(len(expanded) + self.batch_size - 1) // self.batch_size):
            chunk = expanded[start : start + self.batch_size]
            enc = self._encode_prompts([p for _, p in chunk], prompt_limit)
            kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, do_sample=sample,
                                          pad_token_id=self.tokenizer.pad_token_id)
            if sample:
                kwargs.update(temperature=temperature, top_k=0, top_p=1.0)
            out = self.model.generate(**enc, **kwargs)
            if self.kind == "causal-lm":
                out = out[:, enc["input_ids"].shape[1] :]
            texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
            for (i, _), t in zip(chunk, texts):
                results[i].append(t.strip())
        return results

    def context_length(self) -> int | None:
        """Positions the model can attend to (its config's ``max_position_embeddings`` /
        ``n_positions`` / ``n_ctx``), or None when the config does not say."""
        cfg = getattr(self.model, "config", None)
        for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def prompt_limit(self, max_new_tokens: int) -> int | None:
        """Most prompt tokens that leave room for ``max_new_tokens`` in the context; a request
        that cannot fit at all is refused with one line."""
        from provscan.errors import ProvscanError

        context = self.context_length()
        if context is None:
            return None
        room = context if self.kind == "seq2seq" else context - max_new_tokens
        if max_new_tokens >= context or room < 1:
            raise ProvscanError(f"max_new_tokens {max_new_tokens} does not fit the model's context "
                                f"of {context} tokens")
        return room

    def _encode_prompts(self, prompts: list[str], limit: int | None) -> Any:
        """Tokenise a batch; prompts longer than ``limit`` tokens keep their last ``limit``
        tokens (the text right before the answer) and are counted in ``truncated_prompts``."""
        tok = self.tokenizer
        if limit is None:
            return tok(prompts, return_tensors="pt", padding=True, truncation=True).to(self.device)
        lengths = [len(ids) for ids in tok(prompts)["input_ids"]]
        self.truncated_prompts += sum(n > limit for n in lengths)
        side = getattr(tok, "truncation_side", "right")
        tok.truncation_side = "left"
        try:
            return tok(prompts, return_tensors="pt", padding=True, truncation=True,
                       max_length=limit).to(self.device)
        finally:
            tok.truncation_side = side

    @no_grad
    def loglik(self, texts: list[str], contexts: list[str] | None = None) -> np.ndarray:
        """Sum of token log-probabilities of each text (given its context, when given)."""
        import numpy as np

        out = np.zeros(len(texts), dtype=np.float64)
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            ctx = contexts[start : start + self.batch_size] if contexts else None
            out[start : start + len(batch)] = self._loglik_batch(batch, ctx)
        return out

    def _loglik_batch(self, texts: list[str], contexts: list[str] | None) -> np.ndarray:
        tok = self.tokenizer
        if self.kind == "seq2seq":
            src = contexts or [""] * len(texts)
            enc = tok(src, return_tensors="pt", padding=True, truncation=True).to(self.device)
            lab = tok(text_target=texts, return_tensors="pt", padding=True, truncation=True)
            labels = lab["input_ids"].to(self.device)
            mask = lab["attention_mask"].to(self.device)
            logits = self.model(**enc, labels=labels).logits.float()
            lp = logits.log_softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
            return (lp * mask).sum(-1).cpu().numpy()
        tok.padding_side = "right"
        try:
            full = [(c or "") + t for c, t in zip(contexts or [""] * len(texts), texts)]
            enc = tok(full, return_tensors="pt", padding=True, truncation=True).to(self.device)
            ctx_lens = [len(tok(c)["input_ids"]) if c else 0 for c in (contexts or [""] * len(texts))]
        finally:
            tok.padding_side = "left"
        ids, att = enc["input_ids"], enc["attention_mask"]
        logits = self.model(input_ids=ids, attention_mask=att).logits.float()
        lp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        m = att[:, 1:].clone().float()
        for row, c in enumerate(ctx_lens):
            m[row, : max(c - 1, 0)] = 0
        return (lp * m).sum(-1).cpu().numpy()


class TextClassifierTarget(ClassifierTarget):
    """A text classifier (e.g. BERT with a sequence-classification head): inputs are strings.

    ``logits(texts)`` / ``predict_topk(texts, k)`` take a list of strings; ``forward`` takes the
    tokenizer's encoding (a dict of tensors). ``modality`` is ``"text"`` (image classifiers have
    ``input_shape``; text classifiers have ``input_shape == ()``).
    """

    modality = "text"

    def __init__(self, module: torch.nn.Module, tokenizer: Any, num_classes: int, **kwargs: Any) -> None:
        super().__init__(module, num_classes, (), **kwargs)
        self.tokenizer = tokenizer

    def forward(self, x: Any) -> torch.Tensor:
        if self.module is None:
            raise NotImplementedError("this target has no weights (black-box)")
        return self.module(**x).logits.float()

    @no_grad
    def logits(self, x: Any) -> np.ndarray:
        import numpy as np
        import torch

        texts = list(x)
        outs = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[i : i + self.batch_size], return_tensors="pt", padding=True,
                                 truncation=True)
            outs.append(self.forward({k: v.to(self.device) for k, v in enc.items()}).cpu())
        if not outs:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        return torch.cat(outs).numpy()



class EncoderTarget(Target):
    """A text encoder (BERT-like, sentence-transformers): ``embed(texts)`` returns sentence vectors.

    Vectors are the pooled last hidden states (``pooling``: ``mean`` over non-padding tokens,
    ``cls`` or ``max``, as the snapshot's pooling configuration says), L2-normalised when
    ``normalize`` (a sentence-transformers ``Normalize`` module). Texts longer than
    ``max_length`` tokens are truncated.
    """

    kind = "encoder"

    def __init__(self, model: Any, tokenizer: Any, pooling: str = "mean", normalize: bool = False,
                 max_length: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if pooling not in ("mean", "cls", "max"):
            raise ValueError(f"unknown pooling {pooling!r}")
        self.model = self.module = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = max_length
        self.info.setdefault("pooling", pooling)
        if model is not None:
            model.to(device=self.device, dtype=self.dtype).eval()
            for p in model.parameters():
                p.requires_grad_(False)

    @no_grad
    def embed(self, texts: list[str]) -> np.ndarray:
        """Sentence vectors ``(N, dim)`` (float32), computed in batches of ``batch_size``."""
        import numpy as np
        import torch

        texts = [str(t) for t in texts]
        outs = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[i : i + self.batch_size], return_tensors="pt", padding=True,
                                 truncation=True, max_length=self.max_length)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            hidden = self.model(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).float()
            if self.pooling == "cls":
                vec = hidden[:, 0]
            elif self.pooling == "max":
                vec = hidden.masked_fill(mask == 0, float("-inf")).amax(1)
            else:
                vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            if self.normalize:
                vec = torch.nn.functional.normalize(vec, dim=-1)
            outs.append(vec.cpu())
        if not outs:
            dim = int(getattr(getattr(self.model, "config", None), "hidden_size", 0) or 0)
            return np.zeros((0, dim), dtype=np.float32)
        return torch.cat(outs).numpy().astype(np.float32, copy=False)
