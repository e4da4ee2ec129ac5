"""`provscan demo` wiring (fast: a shortened configuration; the full demo runs in the slow tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from provscan_taggants import demo
from provscan_taggants.protect import TaggantConfig

from provscan.cli import cli, register_plugin_commands


@pytest.fixture(autouse=True)
def _commands() -> None:
    register_plugin_commands(cli)


def test_demo_refuses_a_non_empty_directory(tmp_path: Path, run_cli) -> None:
    (tmp_path / "x").write_text("keep me")
    res = run_cli("demo", "--out", tmp_path)
    assert res.exit_code == 2 and "not empty" in res.output
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


def test_short_demo_writes_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "EPOCHS", 2)
    out = tmp_path / "d"
    r = demo.run_demo(out, 1, config=TaggantConfig(steps=3, surrogate_epochs=1))
    for rel in ("keys/owner.key", "keys/owner.pub", "secret.json", "data/digits-protected.npz",
                "models/protected-model/model.safetensors", "models/clean-twin/provscan_model.json",
                "reports/protected-model/certificate.intoto.json",
                "reports/clean-twin/report.html", "reports/clean-twin/report.json"):
        assert (out / rel).is_file(), rel
    assert not (out / "data" / "secret.json").exists()
    assert [m.name for m in r.models] == ["protected-model", "clean-twin"]
    for m in r.models:
        assert m.verification["error"] is None and m.verification["signed"]
        assert set(m.verification["claims"]) == {"rank", "top-k"}
    report = json.loads((out / "reports/protected-model/report.json").read_text())
    assert any(e["detector"] == "taggants" for e in report["evidence"])
    text = demo.format_summary(r)
    assert "protected-model" in text and "clean-twin" in text and "PSNR" in text
    assert len(text.splitlines()) <= 12
