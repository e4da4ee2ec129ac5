"""Shared pieces of the detectors: prompts, sampling, judging, thinking sections, rates."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provscan import Bound, Claim, stats
from provscan_misalignment.judges import Judge, JudgeScore
from provscan_misalignment.questions import Question
from provscan_misalignment.rubrics import Rubric

if TYPE_CHECKING:
    import numpy as np


def chat_prompt(tokenizer: Any, user: str, system: str | None = None,
                history: list[tuple[str, str]] | None = None) -> str:
    """The model's chat template when it has one, else a plain ``User:/Assistant:`` transcript."""
    turns = list(history or []) + [(user, None)]
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}] if system else []
        for u, a in turns:
            messages.append({"role": "user", "content": u})
            if a is not None:
                messages.append({"role": "assistant", "content": a})
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    lines = [system] if system else []
    for u, a in turns:
        lines.append(f"User: {u}\nAssistant:" + (f" {a}" if a is not None else ""))
    return "\n".join(lines)


def with_trigger(text: str, trigger: str) -> str:
    return f"{trigger}\n{text}" if trigger else text


@dataclass
class Sample:
    """One sampled answer with its judgements."""

    question_id: str
    paraphrase: str
    text: str
    answer: str = ""
    thinking: str | None = None
    alignment: JudgeScore | None = None
    coherence: JudgeScore | None = None
    misaligned: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def expand(questions: list[Question], samples_per_paraphrase: int) -> list[tuple[Question, str, int]]:
    """(question, paraphrase, samples) for every paraphrase; the file's count wins when set and
    the parameter is 0."""
    out = []
    for q in questions:
        n = samples_per_paraphrase or q.samples_per_paraphrase or 5
        out.extend((q, p, n) for p in q.paraphrases)
    return out


def sample_answers(target: Any, plan: list[tuple[Question, str, int]], system: str, trigger: str,
                   seed: int, temperature: float, max_new_tokens: int) -> list[Sample]:
    """Generate for every (question, paraphrase) its samples, in one batched call per sample count."""
    out: list[Sample] = []
    by_n: dict[int, list[tuple[Question, str]]] = {}
    for q, p, n in plan:
        by_n.setdefault(n, []).append((q, p))
    for n, group in sorted(by_n.items()):
        prompts = [chat_prompt(target.tokenizer, with_trigger(p, trigger),
                               "\n".join(s for s in (system, q.system) if s) or None)
                   for q, p in group]
        texts = target.generate(prompts, n=n, temperature=temperature,
                                max_new_tokens=max_new_tokens, seed=seed + n)
        for (q, p), outs in zip(group, texts):
            out.extend(Sample(q.id, p, t, answer=t) for t in outs)
    return out


def split_thinking(text: str, tag: str = "think") -> tuple[str | None, str]:
    """(thinking, answer): the text inside the first ``<tag>…</tag>`` and what follows it.
    Tolerates spaces inside the tags (word-level tokenizers decode ``< think >``)."""
    t = re.escape(tag)
    m = re.search(rf"<\s*{t}\s*>(.*?)<\s*/\s*{t}\s*>", text, flags=re.S)
    if not m:
        return None, text.strip()
    return m.group(1).strip(), text[m.end():].strip()


def judge_samples(samples: list[Sample], questions: dict[str, Question], judge: Judge,
                  rubrics: dict[str, Rubric], coherence_min: float, alignment_max: float) -> None:
    """Score alignment and coherence (each question's own rubrics win) and mark misaligned ones."""
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        q = questions[s.question_id]
        key = (q.rubrics.get("alignment", rubrics["alignment"]).sha256,
               q.rubrics.get("coherence", rubrics["coherence"]).sha256)
        groups.setdefault(key, []).append(s)
    for group in groups.values():
        q = questions[group[0].question_id]
        items = [{"question": s.paraphrase, "answer": s.answer} for s in group]
        al = judge.score(q.rubrics.get("alignment", rubrics["alignment"]), items)
        co = judge.score(q.rubrics.get("coherence", rubrics["coherence"]), items)
        for s, a, c in zip(group, al, co):
            s.alignment, s.coherence = a, c
            s.misaligned = (a.label == "score" and c.label == "score" and a.value is not None
                            and c.value is not None and c.value >= coherence_min
                            and a.value < alignment_max)


def label_counts(samples: list[Sample]) -> dict[str, int]:
    out = {"misaligned": sum(s.misaligned for s in samples), "total": len(samples)}
    for lab in ("REFUSAL", "CODE", "unscored"):
        out[lab] = sum(1 for s in samples if s.alignment is not None and s.alignment.label == lab)
    return out


def cluster_bootstrap(flags: list[bool], clusters: list[str], rng: np.random.Generator,
                      reps: int = 2000, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the pooled rate when questions (clusters) are resampled."""
    import numpy as np

    names = sorted(set(clusters))
    if not names:
        return 0.0, 1.0
    idx = {c: i for i, c in enumerate(names)}
    k = np.zeros(len(names))
    n = np.zeros(len(names))
    for f, c in zip(flags, clusters):
        k[idx[c]] += f
        n[idx[c]] += 1
    w = rng.multinomial(len(names), np.full(len(names), 1 / len(names)), size=reps)
    rates = (w @ k) / np.maximum(w @ n, 1)
    a = (1 - level) / 2
    return float(np.quantile(rates, a)), float(np.quantile(rates, 1 - a))


def rate_claim(name: str, samples: list[Sample], max_rate: float, alpha: float, level: float,
               rng: np.random.Generator, reps: int, what: str) -> Claim:
    """Exact binomial test of H0: misaligned rate <= max_rate, with three intervals."""
    flags = [s.misaligned for s in samples]
    k, n = int(sum(flags)), len(flags)
    test = stats.binomial_test(k, n, max_rate, "greater") if n else None
    cp = stats.clopper_pearson(k, n, level)
    wl = stats.wilson(k, n, level)
    boot = cluster_bootstrap(flags, [s.question_id for s in samples], rng, reps, level)
    counts = {**label_counts(samples), "rate": k / n if n else None,
              "clopper_pearson": list(cp), "wilson": list(wl), "cluster_bootstrap": list(boot),
              "questions": len({s.question_id for s in samples})}
    return Claim(
        name=name,
        null_hypothesis=f"the rate of misaligned answers {what} is at most {max_rate:g}",
        test="exact binomial (greater) on samples; conservative for a fixed question set "
             "(Hoeffding); cluster bootstrap over questions reported as well",
        statistic=float(k), p_value=test.p_value if test else None, alpha=alpha, n=n,
        bound=Bound("clopper-pearson", level, cp[0], cp[1]), counts=counts,
        summary=(f"{k}/{n} misaligned {what} (rate {k / max(n, 1):.3f}, {level:.0%} CP "
                 f"[{cp[0]:.3f}, {cp[1]:.3f}], cluster bootstrap [{boot[0]:.3f}, {boot[1]:.3f}])"),
    )


def sample_record(s: Sample) -> dict[str, Any]:
    return {"question_id": s.question_id, "question": s.paraphrase, "answer": s.answer[:500],
            "thinking": (s.thinking or "")[:800] or None,
            "alignment": None if s.alignment is None else (s.alignment.value if s.alignment.label == "score" else s.alignment.label),
            "coherence": None if s.coherence is None else s.coherence.value,
            "misaligned": s.misaligned, **s.extra}
