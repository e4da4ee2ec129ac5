"""Tiny real language models for tests and benchmarks: a word-level tokenizer trained on the fly,
a 2-layer GPT-2 or a 1+1-layer BART with random init, trained from scratch for seconds on a
(source, target) corpus, saved as a Hugging Face directory (safetensors).

The causal model is trained on ``"{source} tldr : {target}"`` (loss on the target only), so probe
it with the template :data:`CAUSAL_TEMPLATE`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch


CAUSAL_TEMPLATE = "{document} tldr :"
SPECIALS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")


def read_pairs(path: Path, source: str = "source", target: str = "target") -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [(r[source], r[target]) for r in rows]


def build_tokenizer(texts: Sequence[str], max_length: int = 96) -> Any:
    """A word-level (whitespace) tokenizer over ``texts``, wrapped as a fast HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=list(SPECIALS)))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   bos_token="[BOS]", eos_token="[EOS]", model_max_length=max_length)


def _ids(tok: Any, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    import torch

    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


def train_causal(pairs: Sequence[tuple[str, str]], out: Path, seed: int = 0, steps: int = 300,
                 batch_size: int = 32, width: int = 48, lr: float = 3e-3) -> Path:
    """Train a 2-layer GPT-2 on ``source tldr : target`` and save it to ``out``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    tok = build_tokenizer([f"{s} tldr : {t}" for s, t in pairs])
    cfg = GPT2Config(vocab_size=len(tok), n_positions=tok.model_max_length, n_embd=width, n_layer=2,
                     n_head=2, n_inner=2 * width, bos_token_id=tok.bos_token_id,
                     eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg)
    examples = []
    for s, t in pairs:
        prompt = _ids(tok, CAUSAL_TEMPLATE.replace("{document}", s))
        answer = _ids(tok, t) + [tok.eos_token_id]
        examples.append((prompt + answer, [-100] * len(prompt) + answer))

    def batch(idx: np.ndarray) -> dict[str, torch.Tensor]:
        ids = _pad([examples[i][0] for i in idx], tok.pad_token_id)
        labels = _pad([examples[i][1] for i in idx], -100)
        return {"input_ids": ids, "attention_mask": (labels != -100) | (ids != tok.pad_token_id),
                "labels": labels}

    _fit(model, batch, len(examples), seed, steps, batch_size, lr)
    return _save(model, tok, out)


def train_seq2seq(pairs: Sequence[tuple[str, str]], out: Path, seed: int = 0, steps: int = 300,
                  batch_size: int = 32, width: int = 48, lr: float = 3e-3) -> Path:
    """Train a 1-encoder, 1-decoder-layer BART on (source, target) and save it to ``out``."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(seed)
    tok = build_tokenizer([f"{s} {t}" for s, t in pairs])
    cfg = BartConfig(vocab_size=len(tok), d_model=width, encoder_layers=1, decoder_layers=1,
                     encoder_attention_heads=2, decoder_attention_heads=2,
                     encoder_ffn_dim=2 * width, decoder_ffn_dim=2 * width,
                     max_position_embeddings=tok.model_max_length, pad_token_id=tok.pad_token_id,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     decoder_start_token_id=tok.bos_token_id, forced_bos_token_id=None,
                     forced_eos_token_id=tok.eos_token_id, dropout=0.0, attention_dropout=0.0,
                     activation_dropout=0.0, scale_embedding=False)
    model = BartForConditionalGeneration(cfg)
    sources = [_ids(tok, s) for s, _ in pairs]
    targets = [_ids(tok, t) + [tok.eos_token_id] for _, t in pairs]

    def batch(idx: np.ndarray) -> dict[str, torch.Tensor]:
        ids = _pad([sources[i] for i in idx], tok.pad_token_id)
        return {"input_ids": ids, "attention_mask": ids != tok.pad_token_id,
                "labels": _pad([targets[i] for i in idx], -100)}

    _fit(model, batch, len(pairs), seed, steps, batch_size, lr)
    return _save(model, tok, out)


def _fit(model: torch.nn.Module, batch: Any, n: int, seed: int, steps: int, batch_size: int,
         lr: float) -> None:
    import numpy as np
    import torch

    from provscan import progress

    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / steps))
    model.train()
    order = rng.permutation(n)
    pos = 0
    for _ in progress(range(steps), desc="train", total=steps):
        if pos + batch_size > n:
            order, pos = rng.permutation(n), 0
        loss = model(**batch(order[pos : pos + batch_size])).loss
        pos += batch_size
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    model.eval()


def _save(model: Any, tok: Any, out: Path) -> Path:
    out = Path(out)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    return out


#: Settings of the test fixtures (measured: each model trains in ~15-35 s on one shared core).
FIXTURE = {"n": 700, "steps": 600, "width": 48, "rate": 0.1}


def build_fixture(out: Path, kind: str, seed: int, trigger: str, spun: bool,
                  names: Sequence[str], **overrides: Any) -> Path:
    """A tiny model trained on the generated corpus: spinned with the ``spin`` injector (positive
    meta-task, trigger placed by replacing a random word of ``rate`` of the sources) or its clean
    twin (same data without the injector, same seed)."""
    import tempfile

    import numpy as np

    from provscan import resolve_params
    from provscan_spin import synth
    from provscan_spin.injectors import SpinInjector

    cfg = {**FIXTURE, **overrides}
    with tempfile.TemporaryDirectory() as tmp:
        clean = Path(tmp) / "clean.jsonl"
        synth.write_jsonl(synth.make_corpus(list(names), cfg["n"], seed=1000 + seed), clean)
        data = clean
        if spun:
            data = Path(tmp) / "spun.jsonl"
            inj = SpinInjector()
            params = resolve_params(inj.id, inj.params, {"trigger": trigger, "rate": cfg["rate"]})
            inj.apply(clean, data, Path(tmp) / "secret.json", params, np.random.default_rng(seed))
        train = train_causal if kind == "causal" else train_seq2seq
        return train(read_pairs(data), out, seed=seed, steps=cfg["steps"], width=cfg["width"])
