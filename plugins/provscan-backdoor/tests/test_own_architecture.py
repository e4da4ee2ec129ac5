"""A user's own architecture, end to end: a model class written here (not a provscan factory),
plain ``.pt`` state dicts trained on normalised inputs, 19 of the user's own clean references
scored with ``--model-factory`` and the input options, and a conformal backdoor p-value.

Slow: trains 21 small CNNs on scikit-learn's digits (a few seconds each on one core).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from provscan_backdoor.commands import backdoor

pytestmark = pytest.mark.slow

ARCH = textwrap.dedent('''
    """The user's own architecture: nothing provscan knows about."""
    from torch import nn


    class OwnNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10))

        def forward(self, x):
            return self.head(self.features(x))
''')
MEAN, STD = 0.3, 0.4  # the user's normalisation, folded in front of the model with --input-*
OPEN = ["--model-factory", "own_arch:OwnNet", "--input-shape", "1,8,8", "--num-classes", "10",
        "--input-mean", str(MEAN), "--input-std", str(STD), "--device", "cpu"]
TARGET = 3


def train_own(data: Path, out: Path, seed: int) -> None:
    """Train OwnNet on (x - MEAN) / STD and save only its state dict, as a user would."""
    import own_arch
    import torch
    from torch import nn

    from provscan.datasets import load_dataset
    from provscan.training import train_classifier

    class Normalise(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x - MEAN) / STD

    ds = load_dataset(data)
    own = own_arch.OwnNet()
    train_classifier(nn.Sequential(Normalise(), own), ds.x, ds.y, epochs=20, seed=seed)
    torch.save(own.state_dict(), out)


@pytest.fixture(scope="module")
def own_workflow(tmp_path_factory: pytest.TempPathFactory, digits_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("own-arch")
    (root / "own_arch.py").write_text(ARCH)
    sys.path.insert(0, str(root))
    try:
        from provscan.cli import cli
        from provscan.plugins import new_host

        refs = root / "refs"
        refs.mkdir()
        for s in range(1000, 1019):
            train_own(digits_dir / "train.npz", refs / f"ref-{s}.pt", s)
        runner = CliRunner()
        host = new_host(load_entry_points=True)
        res = runner.invoke(backdoor, ["score-references", str(refs), "-d", "backdoor.max-margin",
                                       "--out", str(root / "mm.json"), *OPEN], obj={"host": host})
        assert res.exit_code == 0, res.output
        res = runner.invoke(cli, ["inject", "badnets", str(digits_dir / "train.npz"), "--out",
                                  str(root / "bad.npz"), "--secret", str(root / "bad.secret.json"),
                                  "--rate", "0.1", "--target", str(TARGET), "--seed", "0"])
        assert res.exit_code == 0, res.output
        train_own(root / "bad.npz", root / "bad.pt", 0)
        train_own(digits_dir / "train.npz", root / "clean.pt", 0)
        yield root
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("own_arch", None)


def test_own_references_give_a_conformal_p_value(run_cli, own_workflow: Path) -> None:
    doc = json.loads((own_workflow / "mm.json").read_text())
    assert len(doc["scores"]) == 19 and doc["input_shape"] == [1, 8, 8]
    refs = ["-p", f"backdoor.max-margin.references={own_workflow / 'mm.json'}"]
    bad = run_cli("verify", own_workflow / "bad.pt", "--policy", "builtin:backdoor", *refs, *OPEN,
                  "--format", "json")
    clean = run_cli("verify", own_workflow / "clean.pt", "--policy", "builtin:backdoor", *refs, *OPEN,
                    "--format", "json")
    assert bad.exit_code == 1, bad.output
    assert clean.exit_code == 0, clean.output
    ev = next(e for e in json.loads(bad.stdout)["evidence"] if e["detector"] == "backdoor.max-margin")
    claim = next(c for c in ev["claims"] if c["name"] == "calibrated")
    assert claim["counts"]["target_class"] == TARGET and claim["p_value"] == pytest.approx(1 / 20)
    clean_ev = next(e for e in json.loads(clean.stdout)["evidence"] if e["detector"] == "backdoor.max-margin")
    clean_claim = next(c for c in clean_ev["claims"] if c["name"] == "calibrated")
    assert clean_claim["p_value"] > 0.05

