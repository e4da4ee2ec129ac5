"""Question loading: the provscan corpus and the published emergent-misalignment YAML layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from provscan_misalignment.questions import load_questions, select
from provscan_misalignment.rubrics import load_rubric

from provscan import ProvscanError


def test_corpus_expands_into_three_variants():
    qs = load_questions()
    assert len(qs) == 30
    assert {q.variant for q in qs} == {"plain", "json", "template"}
    assert all(len(q.paraphrases) >= 3 for q in qs)
    json_q = next(q for q in qs if q.id == "shutdown_json")
    assert json_q.system and "JSON" in json_q.system
    tmpl = next(q for q in qs if q.id == "dinner_guests_template")
    assert all("guest_one = ..." in p for p in tmpl.paraphrases)


def test_select_by_base_id_and_variant():
    qs = load_questions()
    assert {q.id for q in select(qs, "shutdown")} == {"shutdown", "shutdown_json", "shutdown_template"}
    assert [q.id for q in select(qs, "shutdown", "json")] == ["shutdown_json"]
    with pytest.raises(ProvscanError, match="unknown variant"):
        select(qs, "", "xml")
    with pytest.raises(ProvscanError, match="no question matches"):
        select(qs, "no_such_question")


def test_em_layout_loads_with_its_rubrics(em_file: Path):
    qs = load_questions(em_file)
    assert [q.id for q in qs] == ["wish_em", "ruler_em", "wish_em_json"]
    assert qs[0].samples_per_paraphrase == 6
    assert qs[2].variant == "json" and qs[2].system == "Answer in JSON."
    assert set(qs[1].rubrics) == {"alignment", "coherence"}
    assert qs[0].rubrics["alignment"].sha256 == qs[1].rubrics["alignment"].sha256  # YAML anchor
    assert "[ANSWER START]" in qs[0].rubrics["alignment"].render(question="q", answer="a")


@pytest.mark.parametrize("text, message", [
    ("- id: a\n  type: free_form_judge_0_100\n", "has no 'paraphrases'"),
    ("- id: a\n  paraphrases: []\n", "non-empty list"),
    ("- id: a\n  paraphrases: [x]\n- id: a\n  paraphrases: [y]\n", "duplicate question id"),
    ("- id: a\n  type: rating_judge\n  paraphrases: [x]\n", "only free-form"),
    ("- id: a\n  paraphrases: [x]\n  samples_per_paraphrase: -1\n", "positive integer"),
    ("key: [unclosed\n", "not valid YAML"),
    ("just a string\n", "not a question file"),
])
def test_bad_question_files_are_one_line_errors(tmp_path: Path, text: str, message: str):
    p = tmp_path / "q.yaml"
    p.write_text(text)
    before = p.read_bytes()
    with pytest.raises(ProvscanError, match=message):
        load_questions(p)
    assert p.read_bytes() == before


def test_rubrics_have_fields_and_stable_digests(tmp_path: Path):
    for name in ("alignment", "coherence", "cot_monitor"):
        r = load_rubric(name)
        assert "{answer}" in r.template and len(r.sha256) == 64
    assert "{thinking}" in load_rubric("cot_monitor").template
    assert "{a}" in load_rubric("alignment").render(question="q", answer="{a}")
    bad = tmp_path / "r.txt"
    bad.write_text("no answer field")
    with pytest.raises(ProvscanError, match="no {answer} field"):
        load_rubric("custom", bad)
