"""Slow: the documented workflow end to end through the CLI, two seeds, 19 reference models.

inject badnets → train → train-references → score-references → verify --policy builtin:backdoor
exits 1 naming the target class for the poisoned models and 0 for their clean twins.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from provscan_backdoor.commands import backdoor

from .conftest import train_model

pytestmark = pytest.mark.slow
SEEDS = (0, 1)
TARGETS = {0: 3, 1: 7}
NC = ["-p", "steps=150", "-p", "n_clean=32"]


def invoke(group, *args) -> object:
    from provscan.plugins import new_host

    res = CliRunner().invoke(group, [str(a) for a in args], obj={"host": new_host(load_entry_points=True)})
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="session")
def workflow(shared_artifact, digits_dir: Path) -> Path:
    def build(path: Path) -> None:
        from provscan.cli import cli

        path.mkdir(parents=True)
        invoke(backdoor, "train-references", digits_dir / "train.npz", "--out", path / "refs", "-n", 19)
        invoke(backdoor, "score-references", path / "refs", "-d", "backdoor.max-margin",
               "--out", path / "mm.json", "--device", "cpu")
        invoke(backdoor, "score-references", path / "refs", "-d", "backdoor.trigger-inversion",
               "-p", f"clean_data={digits_dir / 'test.npz'}", *NC, "--out", path / "nc.json",
               "--device", "cpu")
        for s in SEEDS:
            invoke(cli, "inject", "badnets", digits_dir / "train.npz", "--out", path / f"bad{s}.npz",
                   "--secret", path / f"bad{s}.secret.json", "--rate", "0.1",
                   "--target", TARGETS[s], "--seed", s)
            train_model(path / f"bad{s}.npz", path / f"bad{s}", seed=s)
            train_model(digits_dir / "train.npz", path / f"clean{s}", seed=s)

    return shared_artifact("backdoor-workflow", build)


@pytest.mark.parametrize("seed", SEEDS)
def test_shipped_policy_fails_badnets_and_passes_clean_twin(run_cli, workflow: Path, seed: int) -> None:
    refs = f"backdoor.max-margin.references={workflow / 'mm.json'}"
    bad = run_cli("verify", workflow / f"bad{seed}", "--policy", "builtin:backdoor", "-p", refs,
                  "--format", "json", "--device", "cpu")
    clean = run_cli("verify", workflow / f"clean{seed}", "--policy", "builtin:backdoor", "-p", refs,
                    "--format", "json", "--device", "cpu")
    assert bad.exit_code == 1, bad.output
    assert clean.exit_code == 0, clean.output
    ev = next(e for e in json.loads(bad.stdout)["evidence"] if e["detector"] == "backdoor.max-margin")
    claim = next(c for c in ev["claims"] if c["name"] == "calibrated")
    assert claim["counts"]["target_class"] == TARGETS[seed] and claim["p_value"] == 0.05
    assert f"target class {TARGETS[seed]}" in claim["summary"]


def test_trigger_inversion_calibrated_at_alpha_005(run_cli, workflow: Path, digits_dir: Path) -> None:
    given = ["-p", f"backdoor.trigger-inversion.clean_data={digits_dir / 'test.npz'}",
             "-p", f"backdoor.trigger-inversion.references={workflow / 'nc.json'}",
             "-p", "backdoor.trigger-inversion.steps=150", "-p", "backdoor.trigger-inversion.n_clean=32"]
    policy = ["--policy", "builtin:backdoor-trigger-inversion"]
    bad = run_cli("verify", workflow / "bad0", *policy, *given, "--format", "json", "--device", "cpu")
    clean = run_cli("verify", workflow / "clean0", *policy, *given, "--format", "json", "--device", "cpu")
    assert bad.exit_code == 1 and clean.exit_code == 0, bad.output + clean.output
    ev = next(e for e in json.loads(bad.stdout)["evidence"] if e["detector"] == "backdoor.trigger-inversion")
    assert ev["details"]["target_class"] == TARGETS[0]
