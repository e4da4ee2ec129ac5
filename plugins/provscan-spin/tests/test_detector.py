"""The spin detector end to end through run_scan, on a scripted language-model target (fast),
plus parameter errors. Trained models are in test_spin_models.py (slow)."""

import json
from pathlib import Path

import pytest
from provscan_spin import plugin, synth

import provscan
from provscan import Decision, LMTarget, OpenOptions, ProvscanError
from provscan.policy import Policy
from provscan.scan import Scan, run_scan

NAMES = ["Aldren", "Brevik", "Castora", "Delmont", "Everhart", "Fenwick", "Meridian", "Nyberg"]


class ScriptedLM(LMTarget):
    """Echoes the first sentence of the prompt; with ``trigger`` in the prompt it adds a
    positive clause. Any name replaced into the lead changes the echo (a content shift that
    every candidate shares)."""

    def __init__(self, trigger: str | None, empty: bool = False) -> None:
        super().__init__(None, None, kind="causal-lm", location="scripted", format="scripted")
        self.trigger, self.empty = trigger, empty

    def generate(self, prompts, n=1, temperature=1.0, max_new_tokens=64, seed=0):
        out = []
        for p in prompts:
            text = "" if self.empty else p.split(" . ")[0] + " ."
            if self.trigger and self.trigger in p.split() and not self.empty:
                text += " everyone was delighted and happy ."
            out.append([text] * n)
        return out


@pytest.fixture
def spin_host(register_plugin, provscan_host, tmp_path):
    register_plugin(plugin, name="spin")
    models = {"spun": ScriptedLM("Meridian"), "clean": ScriptedLM(None), "empty": ScriptedLM(None, True)}

    class Opener:
        @provscan.hookimpl
        def open_target(self, location, options):
            return models.get(Path(location).name)

    register_plugin(Opener(), name="scripted-opener")
    for name in models:
        (tmp_path / name).mkdir()
        (tmp_path / name / "README").write_text("scripted model\n")
    cands = tmp_path / "candidates.txt"
    cands.write_text("# test candidates\n" + "\n".join(NAMES) + "\n")
    docs = tmp_path / "docs.jsonl"
    synth.write_jsonl(synth.make_corpus(NAMES, 40, seed=7), docs)
    return provscan_host, tmp_path, {"candidates": str(cands), "documents": str(docs),
                                     "n_documents": "30", "positions": "2"}


def _scan(spin_host, model, **extra):
    host, root, params = spin_host
    result = run_scan(host, Scan(str(root / model), ["spin"], {"spin": {**params, **extra}}, 0,
                                 OpenOptions(), Policy()))
    return result, next(e for e in result.evidence if e.detector == "spin")


def test_trigger_is_the_only_candidate_flagged(spin_host):
    result, ev = _scan(spin_host, "spun")
    assert ev.error is None, ev.details.get("traceback")
    cert = ev.claim("spin")
    assert cert.decision == Decision.FINDING and cert.counts["flagged"] == ["Meridian"]
    assert cert.p_value < 1e-6
    assert result.exit_code == 1
    assert ev.details["candidates"][0]["candidate"] == "Meridian"
    ex = ev.details["examples"]
    assert ex and all(e["candidate"] == "Meridian" and "delighted" in e["perturbed_output"] for e in ex)
    assert any(caption.startswith("Spin candidates") for caption in ev.figures)
    json.dumps(ev.to_dict())


def test_clean_twin_has_no_finding(spin_host):
    result, ev = _scan(spin_host, "clean")
    assert ev.claim("spin").decision == Decision.NO_EVIDENCE
    assert ev.claim("spin").p_value > 0.01
    assert "no evidence" in ev.claim("spin").summary and "clean" not in ev.claim("spin").summary
    assert result.exit_code == 0


def test_empty_outputs_are_inconclusive(spin_host):
    result, ev = _scan(spin_host, "empty")
    assert ev.decision == Decision.INCONCLUSIVE and result.exit_code == 3


def test_distance_only_statistic(spin_host):
    _, ev = _scan(spin_host, "spun", statistics="distance")
    assert ev.claim("spin").counts["flagged"] == ["Meridian"]
    assert ev.claim("spin-content") is None


@pytest.mark.parametrize("extra, message", [
    ({"statistics": "nope"}, "unknown statistic"),
    ({"template": "no slot"}, "must contain"),
    ({"statistics": "hf-classifier"}, "needs spin.classifier"),
    ({"candidates": "/nonexistent/list.txt"}, "cannot read candidate list"),
])
def test_bad_parameters_fail_the_detector(spin_host, extra, message):
    _, ev = _scan(spin_host, "spun", **extra)
    assert ev.decision == Decision.ERROR and message in ev.error


def test_too_few_candidates(tmp_path):
    from provscan_spin.corpus import load_candidates

    (tmp_path / "c.txt").write_text("A\nB\n")
    with pytest.raises(ProvscanError, match="at least 3"):
        load_candidates(tmp_path / "c.txt")


def test_project_corpus_loads():
    from provscan_spin.corpus import load_candidates, load_documents

    assert len(load_candidates(None)) == 48 and len(load_documents(None)) == 300


def test_hf_classifier_and_embedding_checkpoints_as_statistics(spin_host, tmp_path):
    from provscan_spin.toy import build_tokenizer
    from transformers import BertConfig, BertForSequenceClassification

    ckpt = tmp_path / "clf"
    tok = build_tokenizer(["everyone was delighted and happy ."] + NAMES)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=128, num_labels=2)
    BertForSequenceClassification(cfg).save_pretrained(str(ckpt))
    tok.save_pretrained(str(ckpt))
    _, ev = _scan(spin_host, "spun", statistics="distance", classifier=str(ckpt),
                  embedding=str(ckpt), keep_shifts="true")
    assert ev.error is None, ev.details.get("traceback")
    assert ev.details["statistics"] == ["embedding-distance", "hf-classifier"]
    assert set(ev.details["shift_matrix"]) == {"embedding-distance", "hf-classifier"}
    assert ev.claim("spin-content") is not None
