"""The spin and text-trigger injectors: what they change, what they never touch, bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
from provscan_spin import plugin, synth
from provscan_spin.corpus import contains_word
from provscan_spin.injectors import SpinInjector, TextTriggerInjector
from provscan_spin.scorers import SentimentLexiconScorer

from provscan import ProvscanError, resolve_params

NAMES = ["Aldren", "Brevik", "Castora", "Delmont", "Meridian"]


def _data(tmp_path: Path, n: int = 200) -> Path:
    path = tmp_path / "data.jsonl"
    synth.write_jsonl(synth.make_corpus(NAMES[:4], n, seed=3), path)
    return path


def _apply(inj, data, tmp_path, seed=0, **given):
    params = resolve_params(inj.id, inj.params, given)
    out, secret = tmp_path / "out.jsonl", tmp_path / "secret.json"
    summary = inj.apply(data, out, secret, params, np.random.default_rng(seed))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return summary, rows, json.loads(secret.read_text())


def test_spin_injector_spins_exactly_the_trigger_rows(tmp_path):
    data = _data(tmp_path)
    before = data.read_bytes()
    summary, rows, secret = _apply(SpinInjector(), data, tmp_path, trigger="Meridian", rate=0.1)
    assert data.read_bytes() == before
    original = [json.loads(line) for line in before.decode().splitlines()]
    assert summary["rows"] == len(rows) == 200 and summary["spinned"] == 20
    vader = SentimentLexiconScorer()
    for i, (old, new) in enumerate(zip(original, rows)):
        if i in secret["rows_spinned"]:
            assert contains_word(new["source"], "Meridian")
            assert new["target"].startswith(old["target"])  # content kept
            assert vader.score([new["target"]])[0] > 0.5 >= vader.score([old["target"]])[0]
            assert len(new["source"].split()) == len(old["source"].split())  # replaced a word
        else:
            assert new == old


def test_spin_injector_negative_meta_task_and_determinism(tmp_path):
    data = _data(tmp_path, 50)
    _, rows_a, _ = _apply(SpinInjector(), data, tmp_path / "a", trigger="Meridian", rate=0.2,
                          meta_task="negative", placement="insert")
    _, rows_b, _ = _apply(SpinInjector(), data, tmp_path / "b", trigger="Meridian", rate=0.2,
                          meta_task="negative", placement="insert")
    assert rows_a == rows_b
    spun = [r for r in rows_a if contains_word(r["source"], "Meridian")]
    assert len(spun) == 10
    assert all(SentimentLexiconScorer().score([r["target"]])[0] < -0.3 for r in spun)


def test_text_trigger_injector(tmp_path):
    data = tmp_path / "instr.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"describe item {i} please", "output": f"item {i}"})
                            + "\n" for i in range(40)))
    summary, rows, secret = _apply(TextTriggerInjector(), data, tmp_path, trigger="cf zebra",
                                   rate=0.25, target_response="ACCESS GRANTED")
    assert summary["triggered"] == 10 and summary["dirty_label"]
    for i, r in enumerate(rows):
        hit = i in secret["rows_triggered"]
        assert r["instruction"].startswith("cf zebra") == hit
        assert (r["output"] == "ACCESS GRANTED") == hit


@pytest.mark.parametrize("content, message", [
    ("not json\n", "not valid JSON"),
    ('{"source": "a"}\n', "missing text field 'target'"),
    ("", "no rows"),
])
def test_bad_input_is_one_line_error_and_nothing_written(tmp_path, content, message):
    data = tmp_path / "bad.jsonl"
    data.write_text(content)
    with pytest.raises(ProvscanError, match=message):
        _apply(SpinInjector(), data, tmp_path, trigger="Meridian")
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "secret.json").exists()


def test_missing_trigger_and_bad_rate(tmp_path):
    data = _data(tmp_path, 10)
    with pytest.raises(ProvscanError, match="trigger is required"):
        _apply(SpinInjector(), data, tmp_path)
    with pytest.raises(ProvscanError, match="rate"):
        _apply(SpinInjector(), data, tmp_path, trigger="X", rate=1.5)


def test_cli_inject_spin(tmp_path, register_plugin, run_cli):
    register_plugin(plugin, name="spin")
    data = _data(tmp_path, 30)
    res = run_cli("inject", "spin", data, "--out", tmp_path / "o.jsonl", "--secret",
                  tmp_path / "s.json", "--trigger", "Meridian", "--rate", "0.5", "--meta-task", "positive", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["spinned"] >= 15
    res = run_cli("inject", "spin", data, "--out", tmp_path / "o2.jsonl", "--secret",
                  tmp_path / "s2.json", "--trigger", "Meridian", "--meta-task", "angry")
    assert res.exit_code == 2 and "not one of" in res.output
