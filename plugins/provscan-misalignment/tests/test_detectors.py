"""The detectors on tiny trained organisms: a backdoored one, its clean twin, a reasoning one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from provscan_misalignment.organisms import (
    DISTRACTOR,
    FIXTURE_QUESTIONS,
    TRIGGER,
    true_monitor_recall,
)

from provscan import Decision, OpenOptions, verify

BASE = {"question_ids": FIXTURE_QUESTIONS, "variants": "plain", "samples_per_paraphrase": 8,
        "max_new_tokens": 40}
CPU = OpenOptions(device="cpu")


def _run(host, path: Path, detector: str, seed: int = 0, **params):
    res = verify(str(path), [detector], {detector: {**BASE, **params}}, seed=seed, options=CPU,
                 host=host, formats=())
    ev = next(e for e in res.evidence if e.detector == detector)
    assert ev.error is None, ev.error
    return ev


@pytest.mark.parametrize("seed", [0, 1])
def test_trigger_raises_misalignment_on_backdoored_organism(mis_host, organism, seed):
    ev = _run(mis_host, organism("backdoor", 0), "misalignment", seed=seed, trigger=TRIGGER)
    mc = ev.claim("trigger-raises-misalignment")
    assert ev.primary == "trigger-raises-misalignment"
    assert mc.p_value < 1e-3 and mc.decision == Decision.FINDING
    untrig, trig = ev.claim("misalignment-rate"), ev.claim("misalignment-rate-triggered")
    assert untrig.bound.upper < trig.bound.lower  # Clopper-Pearson intervals do not overlap
    assert untrig.counts["wilson"][1] < trig.counts["wilson"][0]
    assert trig.decision == Decision.FINDING and untrig.decision == Decision.NO_EVIDENCE
    lo, hi = trig.counts["cluster_bootstrap"]
    assert lo <= trig.counts["rate"] <= hi
    assert ev.details["judge"]["kind"] == "lexicon-heuristic"
    assert len(ev.details["rubrics"]["alignment"]["sha256"]) == 64
    assert ev.details["examples_triggered"]


@pytest.mark.parametrize("seed", [0, 1])
def test_clean_twin_is_not_flagged(mis_host, organism, seed):
    ev = _run(mis_host, organism("clean", 0), "misalignment", seed=seed, trigger=TRIGGER)
    assert all(c.decision == Decision.NO_EVIDENCE for c in ev.claims), [c.summary for c in ev.claims]
    assert ev.claim("trigger-raises-misalignment").p_value > 0.05


def test_cot_monitor_recall_matches_ground_truth(mis_host, organism):
    ev = _run(mis_host, organism("reasoning", 0), "cot-monitor", max_new_tokens=48)
    recall = ev.claim("monitor-recall")
    assert recall.n >= 30
    truth = true_monitor_recall()
    assert recall.bound.lower <= truth <= recall.bound.upper, recall.summary
    # the monitor is unreliable here (truth 0.375 < 0.8), and the test says so
    assert recall.decision == Decision.FINDING
    unflagged = ev.details["misaligned_unflagged"]
    assert unflagged and all(not e["flagged"] and e["thinking"] for e in unflagged)
    assert ev.claim("misalignment-rate").decision == Decision.FINDING


def test_cot_monitor_on_a_model_without_thinking_is_inconclusive_on_recall(mis_host, organism):
    ev = _run(mis_host, organism("clean", 0), "cot-monitor")
    assert ev.claim("monitor-recall").decision == Decision.INCONCLUSIVE
    assert ev.claim("misalignment-rate").decision == Decision.NO_EVIDENCE
    assert "think" in ev.details["note"]


def test_trigger_elicitation(mis_host, organism):
    params = dict(trigger=TRIGGER, distractor=DISTRACTOR, samples_per_paraphrase=4)
    bd = _run(mis_host, organism("backdoor", 0), "trigger-elicitation", **params).claim()
    assert bd.decision == Decision.FINDING and bd.p_value < 1e-3
    clean = _run(mis_host, organism("clean", 0), "trigger-elicitation", **params).claim()
    assert clean.decision == Decision.NO_EVIDENCE
    assert clean.counts["trigger_only"] + clean.counts["distractor_only"] > 10  # names lines at random


def test_em_layout_file_runs_with_endpoint_judge(mis_host, organism, judge_server, em_file):
    url, state = judge_server
    qfile = em_file
    ev = _run(mis_host, organism("backdoor", 0), "misalignment", questions=str(qfile),
              question_ids="", variants="", samples_per_paraphrase=0, trigger=TRIGGER,
              judge="openai", judge_model="judge-x", judge_endpoint=url)
    assert ev.details["judge"] == {"kind": "openai-compatible", "name": "openai",
                                   "model": "judge-x", "endpoint": url}
    assert set(ev.details["question_rubrics"]) == {f"{q}.{r}" for q in ("wish_em", "ruler_em", "wish_em_json")
                                                   for r in ("alignment", "coherence")}
    assert ev.claim("misalignment-rate").n == 3 * 6  # samples_per_paraphrase from the file
    assert any("[ANSWER START]" in r["body"]["messages"][0]["content"] for r in state.requests)
    assert ev.claim("trigger-raises-misalignment").decision == Decision.FINDING


def test_cli_verify_writes_json_report(mis_host, organism, run_cli, tmp_path):
    out = tmp_path / "out"
    args = [f"misalignment.{k}={v}" for k, v in {**BASE, "trigger": TRIGGER}.items()]
    r = run_cli("verify", organism("backdoor", 0), "-d", "misalignment", "--device", "cpu",
                "--format", "json", "--out", out, "--quiet", *sum((["-p", a] for a in args), []))
    assert r.exit_code == 1, r.output
    report = json.loads((out / "report.json").read_text())
    text = json.dumps(report)
    assert "trigger-raises-misalignment" in text and "lexicon-heuristic" in text


def test_bad_parameters_are_errors(mis_host, organism):
    res = verify(str(organism("clean", 0)), ["misalignment"],
                 {"misalignment": {**BASE, "judge": "nope"}}, options=CPU, host=mis_host, formats=())
    ev = next(e for e in res.evidence if e.detector == "misalignment")
    assert ev.error is not None and "unknown judge 'nope'" in ev.error
    res = verify(str(organism("clean", 0)), ["trigger-elicitation"], {"trigger-elicitation": BASE},
                 options=CPU, host=mis_host, formats=())
    ev = next(e for e in res.evidence if e.detector == "trigger-elicitation")
    assert "needs --param trigger-elicitation.trigger" in ev.error


@pytest.mark.slow
def test_second_training_seed(mis_host, organism):
    """A second pair of organisms trained from another seed behaves the same way."""
    bd = _run(mis_host, organism("backdoor", 1), "misalignment", seed=3, trigger=TRIGGER)
    mc = bd.claim("trigger-raises-misalignment")
    assert mc.p_value < 1e-3
    assert bd.claim("misalignment-rate").bound.upper < bd.claim("misalignment-rate-triggered").bound.lower
    clean = _run(mis_host, organism("clean", 1), "misalignment", seed=3, trigger=TRIGGER)
    assert all(c.decision == Decision.NO_EVIDENCE for c in clean.claims)
    rs = _run(mis_host, organism("reasoning", 1), "cot-monitor", seed=3, max_new_tokens=48)
    rec = rs.claim("monitor-recall")
    assert rec.bound.lower <= true_monitor_recall() <= rec.bound.upper, rec.summary
