"""Prompts longer than a language model's context are cut to fit (never an IndexError)."""

from __future__ import annotations

import pytest

from provscan import LMTarget, ProvscanError
from provscan.testing.tiny import tiny_model, word_tokenizer

WORDS = "the quick brown fox jumps over the lazy dog"


@pytest.mark.parametrize("arch", ["gpt2", "bart"])
def test_long_prompts_fit_the_context(arch):
    tok = word_tokenizer([WORDS], max_length=10_000)  # the tokenizer does not know the model's limit
    target = LMTarget(tiny_model(arch, len(tok)), tok, kind="seq2seq" if arch == "bart" else "causal-lm",
                      location="tiny", format="hf-dir")
    assert target.context_length() == 64
    long_prompt = " ".join([WORDS] * 30)  # 270 words, 64 positions
    out = target.generate([long_prompt, WORDS], n=2, max_new_tokens=16, temperature=0.0)
    assert [len(o) for o in out] == [2, 2]
    assert target.truncated_prompts == 2  # the long prompt, once per sample; the short one never
    with pytest.raises(ProvscanError, match="does not fit the model's context of 64"):
        target.generate([WORDS], max_new_tokens=64)
