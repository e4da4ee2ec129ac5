"""Fast detector tests on one BadNets model and its clean twin (4 reference models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from provscan_backdoor.commands import backdoor
from provscan_backdoor.detectors import MaxMargin, TriggerInversion

from provscan import Decision, ProvscanError, detector_rng, resolve_params

from .conftest import TARGET_CLASS

FAST_MM = {"steps": "100", "restarts": "10"}
FAST_NC = {"steps": "150", "n_clean": "32"}


def run(cls, target, **given):
    return cls().run(target, resolve_params(cls.id, cls.params, given), detector_rng(0, cls.id))


def test_max_margin_flags_badnets_and_not_its_clean_twin(open_model, poisoned_model: Path,
                                                         clean_model: Path, references4: Path) -> None:
    bad = run(MaxMargin, open_model(poisoned_model), references=str(references4), alpha="0.2", **FAST_MM)
    clean = run(MaxMargin, open_model(clean_model), references=str(references4), alpha="0.2", **FAST_MM)
    cb, cc = bad.claim("calibrated"), clean.claim("calibrated")
    assert cb.decision == Decision.FINDING and cb.counts["target_class"] == TARGET_CLASS
    assert cb.p_value == pytest.approx(1 / 5) and cb.exact
    assert cc.decision == Decision.NO_EVIDENCE and cc.p_value >= 0.4
    assert cb.statistic > 2 * cc.statistic  # margins: clean ~0.25, poisoned ~1
    gamma = bad.claim("gamma-null")
    assert not gamma.exact and "approximate" in gamma.test and gamma.p_value < 0.01
    assert bad.claim("mad-anomaly").p_value is None and "heuristic" in bad.claim("mad-anomaly").test
    assert any(f.startswith(b"<svg") for f in bad.figures.values())


def test_trigger_inversion_flags_badnets_and_not_its_clean_twin(
        open_model, poisoned_model: Path, clean_model: Path, digits_dir: Path, references4: Path) -> None:
    given = dict(FAST_NC, clean_data=str(digits_dir / "test.npz"), references=str(references4), alpha="0.2")
    bad = run(TriggerInversion, open_model(poisoned_model), **given)
    clean = run(TriggerInversion, open_model(clean_model), **given)
    cb, cc = bad.claim("calibrated"), clean.claim("calibrated")
    assert cb.decision == Decision.FINDING and cb.counts["target_class"] == TARGET_CLASS
    assert cc.decision == Decision.NO_EVIDENCE
    assert cb.statistic > 2 * cc.statistic
    assert bad.claim("mad-anomaly").decision == Decision.FINDING  # heuristic, reported as such
    norms = bad.details["per_class"]
    assert norms[str(TARGET_CLASS)] < 0.6 * np.median(list(norms.values()))
    assert len(bad.figures) == 2 and all(f.startswith(b"<svg") for f in bad.figures.values())


def test_no_references_is_inconclusive_never_clean(open_model, clean_model: Path) -> None:
    ev = run(MaxMargin, open_model(clean_model), steps="10", restarts="2")
    assert ev.decision == Decision.INCONCLUSIVE
    assert ev.claim("calibrated").p_value is None and "no reference" in ev.claim().summary


def test_trigger_inversion_without_clean_data_is_inconclusive(open_model, clean_model: Path) -> None:
    ev = run(TriggerInversion, open_model(clean_model))
    assert ev.decision == Decision.INCONCLUSIVE and "clean_data" in ev.claim().summary


def test_too_few_references_is_inconclusive(open_model, clean_model: Path, references4: Path) -> None:
    ev = run(MaxMargin, open_model(clean_model), references=str(references4), steps="20", restarts="4")
    c = ev.claim("calibrated")
    assert c.decision == Decision.INCONCLUSIVE and "need at least 19" in c.summary


def test_scores_file_matches_directory_and_checks_parameters(open_model, clean_model: Path,
                                                             references4: Path, tmp_path: Path,
                                                             provscan_host) -> None:
    out = tmp_path / "refs.json"
    res = CliRunner().invoke(backdoor, ["score-references", str(references4), "-d", "backdoor.max-margin",
                                        "-p", "steps=30", "-p", "restarts=4", "--out", str(out),
                                        "--device", "cpu"], obj={"host": provscan_host})
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert len(doc["scores"]) == 4 and doc["statistic"]["params"]["steps"] == 30
    target = open_model(clean_model)
    from_file = run(MaxMargin, target, references=str(out), steps="30", restarts="4", alpha="0.2")
    from_dir = run(MaxMargin, target, references=str(references4), steps="30", restarts="4", alpha="0.2")
    assert from_file.claim().p_value == from_dir.claim().p_value
    with pytest.raises(ProvscanError, match="rescore them with the same parameters"):
        run(MaxMargin, target, references=str(out), steps="31", restarts="4")


def test_bad_inputs_raise_one_line_errors(open_model, clean_model: Path, tmp_path: Path) -> None:
    target = open_model(clean_model)
    with pytest.raises(ProvscanError, match="not a class of this model"):
        run(MaxMargin, target, classes="0,1,12")
    with pytest.raises(ProvscanError, match="at least 3 classes"):
        run(MaxMargin, target, classes="0,1")
    from provscan.datasets import ImageDataset, save_dataset

    save_dataset(ImageDataset(np.zeros((4, 1, 6, 6), np.float32), np.arange(4)), tmp_path / "small.npz")
    with pytest.raises(ProvscanError, match=r"images \(1, 6, 6\), the model takes \(1, 8, 8\)"):
        run(TriggerInversion, target, clean_data=str(tmp_path / "small.npz"))
    with pytest.raises(ProvscanError, match=r"backdoor.trigger-inversion.patience: -1 is out of range"):
        run(TriggerInversion, target, clean_data=str(tmp_path / "small.npz"), patience="-1")


def test_trigger_inversion_early_stopping_saves_steps_not_the_answer(
        open_model, poisoned_model: Path, digits_dir: Path) -> None:
    from provscan_backdoor.optimize import invert_triggers

    from provscan.datasets import load_dataset

    target = open_model(poisoned_model)
    x = load_dataset(digits_dir / "test.npz").x[:32]
    full = invert_triggers(target, x, list(range(10)), 200, 0.1, 0.99, 3, patience=0)
    early = invert_triggers(target, x, list(range(10)), 200, 0.1, 0.99, 3, patience=10)
    assert (full.steps == 200).all()
    assert early.reached.all() and early.steps.mean() < 160  # classes left the batch early
    assert int(np.argmin(early.norms)) == int(np.argmin(full.norms)) == TARGET_CLASS
    # the early-stopped norms are those of the full run up to the 1 % stall tolerance (and noise)
    assert np.median(early.norms) == pytest.approx(np.median(full.norms), rel=0.15)


def test_shipped_policy_without_references_exits_3(run_cli, clean_model: Path) -> None:
    res = run_cli("verify", clean_model, "--policy", "builtin:backdoor", "--device", "cpu",
                  "-p", "backdoor.max-margin.steps=10", "-p", "backdoor.max-margin.restarts=2")
    assert res.exit_code == 3, res.output
    assert "no reference clean models" in res.output


@pytest.mark.gpu
def test_max_margin_on_cuda_bf16_names_the_target(poisoned_model: Path, provscan_host) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from provscan import OpenOptions, open_checkpoint

    target = open_checkpoint(provscan_host, poisoned_model,
                             OpenOptions(device="cuda", dtype="bfloat16")).require_target()
    ev = run(MaxMargin, target, **FAST_MM)
    assert str(target.device).startswith("cuda")
    assert ev.details["target_class"] == TARGET_CLASS


def test_train_references_command_writes_loadable_models(digits_dir: Path, tmp_path: Path,
                                                         open_model, provscan_host) -> None:
    out = tmp_path / "refs"
    res = CliRunner().invoke(backdoor, ["train-references", str(digits_dir / "test.npz"), "--out",
                                        str(out), "-n", "2", "--epochs", "1", "--seed", "5"],
                             obj={"host": provscan_host})
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["ref-00005", "ref-00006"]
    assert open_model(out / "ref-00005").num_classes == 10
    res = CliRunner().invoke(backdoor, ["score-references", str(out), "-d", "taggants",
                                        "--out", str(tmp_path / "s.json")], obj={"host": provscan_host})
    assert res.exit_code != 0 and "not a provscan-backdoor detector" in str(res.exception)
    assert not (tmp_path / "s.json").exists()
