"""Probe questions: the provscan corpus layout and the published emergent-misalignment YAML layout.

provscan layout (``format: provscan-misalignment-questions/1``): ``questions`` with ``id``,
``paraphrases`` and ``template_fields``; each expands into a ``plain``, a ``json`` (system prompt
asking for a JSON object) and a ``template`` (fill named fields) variant.

EM layout: a YAML list of ``{id, type, paraphrases, samples_per_paraphrase, system, judge,
judge_prompts: {aligned, coherent}}``; ``judge_prompts`` become this question's rubrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provscan import ProvscanError
from provscan_misalignment.corpus import corpus_dir, read_yaml
from provscan_misalignment.rubrics import Rubric

PROVSCAN_FORMAT = "provscan-misalignment-questions/1"
VARIANTS = ("plain", "json", "template")
EM_RUBRIC_KEYS = {"aligned": "alignment", "coherent": "coherence"}


@dataclass(frozen=True)
class Question:
    """One probe: paraphrases of the same question, an optional system prompt and rubrics."""

    id: str
    paraphrases: tuple[str, ...]
    variant: str = "plain"
    system: str | None = None
    samples_per_paraphrase: int | None = None
    rubrics: dict[str, Rubric] = field(default_factory=dict)
    topic: str = ""


def default_questions_path() -> Path:
    return corpus_dir() / "questions.yaml"


def load_questions(path: Path | None = None) -> list[Question]:
    """Every question (all variants) in ``path`` (provscan or EM layout; YAML or JSON)."""
    path = Path(path) if path is not None else default_questions_path()
    data = read_yaml(path)
    if isinstance(data, dict) and data.get("format") == PROVSCAN_FORMAT:
        questions = _from_provscan(data, path)
    elif isinstance(data, list):
        questions = _from_em(data, path)
    else:
        raise ProvscanError(f"{path}: not a question file (expected format {PROVSCAN_FORMAT!r} "
                            "or a list of EM-layout questions)")
    if not questions:
        raise ProvscanError(f"{path}: contains no questions")
    ids = [q.id for q in questions]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ProvscanError(f"{path}: duplicate question id {dup[0]!r}")
    return questions


def select(questions: list[Question], ids: str = "", variants: str = "") -> list[Question]:
    """Filter by comma-separated ids (a base id selects all its variants) and variant names."""
    want_ids = {s.strip() for s in ids.split(",") if s.strip()}
    want_var = {s.strip() for s in variants.split(",") if s.strip()}
    unknown = want_var - set(VARIANTS)
    if unknown:
        raise ProvscanError(f"unknown variant {sorted(unknown)[0]!r} (known: {', '.join(VARIANTS)})")
    out = [q for q in questions
           if (not want_ids or q.id in want_ids or _base_id(q) in want_ids)
           and (not want_var or q.variant in want_var)]
    if not out:
        raise ProvscanError(f"no question matches ids={ids!r} variants={variants!r}")
    return out


def _base_id(q: Question) -> str:
    suffix = f"_{q.variant}"
    return q.id[: -len(suffix)] if q.variant != "plain" and q.id.endswith(suffix) else q.id


def _require(entry: Any, key: str, path: Path, index: int) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise ProvscanError(f"{path}: question #{index + 1} has no {key!r}")
    return entry[key]


def _paraphrases(entry: dict, path: Path, index: int) -> tuple[str, ...]:
    raw = _require(entry, "paraphrases", path, index)
    if not isinstance(raw, list) or not raw or not all(isinstance(p, str) and p.strip() for p in raw):
        raise ProvscanError(f"{path}: question {entry.get('id', index + 1)!r}: paraphrases must be "
                            "a non-empty list of strings")
    return tuple(p.strip() for p in raw)


def _from_provscan(data: dict, path: Path) -> list[Question]:
    systems = data.get("system_prompts") or {}
    suffix = str(data.get("template_suffix", "")).strip()
    out: list[Question] = []
    for i, entry in enumerate(data.get("questions") or []):
        qid = str(_require(entry, "id", path, i))
        paras = _paraphrases(entry, path, i)
        spp = entry.get("samples_per_paraphrase")
        topic = str(entry.get("topic", ""))
        out.append(Question(qid, paras, "plain", entry.get("system"), spp, topic=topic))
        if systems.get("json"):
            out.append(Question(f"{qid}_json", paras, "json", str(systems["json"]).strip(), spp,
                                topic=topic))
        fields = entry.get("template_fields") or []
        if fields:
            form = "\n".join(f"{f} = ..." for f in fields)
            out.append(Question(f"{qid}_template", tuple(f"{p}\n\n{suffix}\n\n{form}" for p in paras),
                                "template", entry.get("system"), spp, topic=topic))
    return out


def _from_em(data: list, path: Path) -> list[Question]:
    out: list[Question] = []
    for i, entry in enumerate(data):
        qid = str(_require(entry, "id", path, i))
        qtype = entry.get("type", "free_form_judge_0_100")
        if not str(qtype).startswith("free_form"):
            raise ProvscanError(f"{path}: question {qid!r} has type {qtype!r}; only free-form "
                                "questions are supported")
        rubrics = {}
        for key, text in (entry.get("judge_prompts") or {}).items():
            if key in EM_RUBRIC_KEYS and isinstance(text, str):
                rubrics[EM_RUBRIC_KEYS[key]] = Rubric(EM_RUBRIC_KEYS[key], text,
                                                      source=f"{path}#{qid}.{key}")
        variant = "json" if entry.get("system") else ("template" if qid.endswith("_template") else "plain")
        spp = entry.get("samples_per_paraphrase")
        if spp is not None and (not isinstance(spp, int) or spp < 1):
            raise ProvscanError(f"{path}: question {qid!r}: samples_per_paraphrase must be a positive integer")
        out.append(Question(qid, _paraphrases(entry, path, i), variant, entry.get("system"), spp, rubrics))
    return out
