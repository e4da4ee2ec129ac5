"""Batched generation throughput: ``LMTarget.generate`` (batched, left-padded) vs a per-prompt
``model.generate`` loop, on the same model and prompts, in one run.

Models: tiny random-init GPT-2 and BART (word-level tokenizer over the spin corpus), at two sizes.
Prompts: the first ``--prompts`` documents of the spin corpus (``provscan_spin/corpora/spin/documents.jsonl``). Greedy decoding,
``--new-tokens`` new tokens per prompt (EOS suppressed so both paths generate the same number of
tokens). Throughput = generated tokens / wall seconds; the per-prompt loop is timed on a subset
and scaled per token. Writes ``docs/benchmarks/lm_generate.md``. Run:

    nice -n 10 python benchmarks/lm_generate.py
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import torch
from provscan_spin.corpus import load_documents
from provscan_spin.toy import CAUSAL_TEMPLATE, build_tokenizer

from provscan.targets import LMTarget
from provscan.targets.base import resolve_device, resolve_dtype

OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "lm_generate.md"


def build(kind: str, width: int, layers: int, tok: Any) -> Any:
    from transformers import BartConfig, BartForConditionalGeneration, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    if kind == "causal-lm":
        cfg = GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=width, n_layer=layers,
                         n_head=max(2, width // 64), bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        return GPT2LMHeadModel(cfg)
    cfg = BartConfig(vocab_size=len(tok), d_model=width, encoder_layers=layers, decoder_layers=layers,
                     encoder_attention_heads=max(2, width // 64), decoder_attention_heads=max(2, width // 64),
                     encoder_ffn_dim=4 * width, decoder_ffn_dim=4 * width, max_position_embeddings=256,
                     pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                     eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.bos_token_id,
                     forced_eos_token_id=None)
    return BartForConditionalGeneration(cfg)


@torch.no_grad()
def per_prompt_loop(target: LMTarget, prompts: list[str], new_tokens: int) -> list[list[str]]:
    """What a naive probe does: one ``model.generate`` call per prompt."""
    tok, out = target.tokenizer, []
    for p in prompts:
        enc = tok([p], return_tensors="pt").to(target.device)
        ids = target.model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                    do_sample=False, pad_token_id=tok.pad_token_id)
        if target.kind == "causal-lm":
            ids = ids[:, enc["input_ids"].shape[1]:]
        out.append([tok.decode(ids[0], skip_special_tokens=True).strip()])
    return out


def measure(kind: str, width: int, layers: int, prompts: list[str], loop_n: int, new_tokens: int,
            batch_size: int, device: torch.device) -> dict[str, Any]:
    tok = build_tokenizer(prompts, max_length=256)
    model = build(kind, width, layers, tok)
    target = LMTarget(model, tok, kind=kind, location="bench", format="bench", device=device,
                      dtype=resolve_dtype("auto", device), batch_size=batch_size)
    model.generation_config.min_new_tokens = new_tokens  # no early EOS: equal work on both paths
    target.generate(prompts[:4], n=1, temperature=0.0, max_new_tokens=2)  # warm-up
    t0 = time.perf_counter()
    batched = target.generate(prompts, n=1, temperature=0.0, max_new_tokens=new_tokens)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    looped = per_prompt_loop(target, prompts[:loop_n], new_tokens)
    t_loop = time.perf_counter() - t0
    # min_new_tokens = max_new_tokens: every prompt gets exactly new_tokens generated tokens
    tb, tl = len(batched) * new_tokens, len(looped) * new_tokens
    agree = sum(a == b for a, b in zip(batched[:loop_n], looped)) / loop_n
    params = sum(p.numel() for p in model.parameters())
    return {"kind": kind, "width": width, "layers": layers, "params": params,
            "batched_tps": tb / t_batched, "loop_tps": tl / t_loop,
            "ratio": (tb / t_batched) / (tl / t_loop), "agree": agree,
            "batched_tokens": tb, "loop_tokens": tl}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--loop", type=int, default=48, help="prompts timed in the per-prompt loop")
    ap.add_argument("--new-tokens", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    docs = load_documents(None)[: args.prompts]
    rows = []
    for kind in ("causal-lm", "seq2seq"):
        prompts = [CAUSAL_TEMPLATE.replace("{document}", d) if kind == "causal-lm" else d for d in docs]
        for width, layers in ((48, 2), (256, 4)):
            r = measure(kind, width, layers, prompts, args.loop, args.new_tokens, args.batch_size, device)
            rows.append(r)
            print(f"{kind} w{width} L{layers}: batched {r['batched_tps']:.0f} tok/s, loop "
                  f"{r['loop_tps']:.0f} tok/s, ratio {r['ratio']:.1f}x, agree {r['agree']:.2f}")
    lines = [
        "# Batched generation throughput (`LMTarget.generate` vs a per-prompt loop)",
        "",
        f"Reproduce: `nice -n 10 python benchmarks/lm_generate.py --device {args.device}` "
        f"({args.prompts} prompts from the spin corpus, {args.new_tokens} greedy new tokens each, "
        f"batch size {args.batch_size}, per-prompt loop timed on {args.loop} prompts, "
        f"{args.threads} CPU thread(s)).",
        "",
        f"Device: {device} ({platform.processor() or platform.machine()}), torch {torch.__version__}. "
        "No GPU was available in the session that produced these figures; rerun with "
        "`--device cuda` where one is.",
        "",
        "| model | parameters | batched tok/s | per-prompt tok/s | speed-up | same greedy text |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['kind']} width {r['width']}, {r['layers']} layers | {r['params']:,} | "
                     f"{r['batched_tps']:.0f} | {r['loop_tps']:.0f} | {r['ratio']:.1f}x | {r['agree']:.0%} |")
    lines += ["", "Both paths generate the same number of tokens per prompt (EOS suppressed). "
              "'Same greedy text' compares the batched (left-padded) and unpadded outputs of the "
              "looped prompts; small differences come from padding changing float rounding. "
              "The machine is shared, so absolute figures vary; the ratio is measured in one run.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
