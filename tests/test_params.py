"""Parameters are checked against their declared type, range and choices before anything runs."""

import math

import pytest

import provscan
from provscan.detectors import Detector
from provscan.errors import ProvscanError
from provscan.params import Param, resolve_params
from provscan.plugins import new_host


@pytest.mark.parametrize(("param", "raw", "want"), [
    (Param("steps", int, 5, ge=1), "3", 3),
    (Param("steps", int, 5, ge=1), 2.0, 2),
    (Param("lr", float, 0.1, gt=0), "1e-3", 1e-3),
    (Param("lr", float, 0.1, gt=0), 2, 2.0),
    (Param("alpha", float, 0.05, gt=0, lt=1), "0.5", 0.5),
    (Param("flag", bool, False), "yes", True),
    (Param("mode", str, "a", choices=("a", "b")), "b", "b"),
    (Param("rate", float, 0.1, ge=0, le=1), "1", 1.0),
    (Param("secret", str, None, path=True), __import__("pathlib").Path("/x/s.json"), "/x/s.json"),
])
def test_accepted(param, raw, want):
    assert param.parse(raw, "d") == want


@pytest.mark.parametrize(("param", "raw", "words"), [
    (Param("steps", int, 5, ge=1), "-5", "out of range (1 <= steps)"),
    (Param("steps", int, 5, ge=1), "0", "out of range"),
    (Param("steps", int, 5, ge=1), 2.5, "expected int"),
    (Param("steps", int, 5, ge=1), True, "expected int"),
    (Param("steps", int, 5, ge=1), "1e9999", "expected int"),
    (Param("lr", float, 0.1, gt=0), "nan", "finite"),
    (Param("lr", float, 0.1), "inf", "finite"),
    (Param("lr", float, 0.1), "-inf", "finite"),
    (Param("lr", float, 0.1), math.nan, "finite"),
    (Param("lr", float, 0.1, gt=0), "0", "out of range (0 < lr)"),
    (Param("alpha", float, 0.05, gt=0, lt=1), "1", "out of range (0 < alpha < 1)"),
    (Param("rate", float, 0.1, ge=0, le=1), "1.5", "(0 <= rate <= 1)"),
    (Param("mode", str, "a", choices=("a", "b")), "c", "not one of a, b"),
    (Param("name", str, ""), 3, "expected str"),
    (Param("flag", bool, False), "maybe", "true or false"),
])
def test_refused_with_one_line_naming_the_parameter(param, raw, words):
    with pytest.raises(ProvscanError) as info:
        param.parse(raw, "det")
    msg = str(info.value)
    assert msg.startswith(f"parameter det.{param.name}: ") and words in msg and "\n" not in msg


def test_resolve_checks_given_values_and_keeps_defaults():
    declared = (Param("steps", int, 5, ge=1), Param("lr", float, 0.1, gt=0))
    assert resolve_params("d", declared, {"steps": "7"}) == {"steps": 7, "lr": 0.1}
    with pytest.raises(ProvscanError, match="d.lr"):
        resolve_params("d", declared, {"lr": "nan"})


def _first_party() -> list[tuple[str, Param]]:
    host = new_host(load_entry_points=True)
    assert {"taggants", "backdoor.max-margin"} <= set(host.detectors())
    classes = [*host.detectors().values(), *host.injectors().values()]
    return [(f"{c.id}.{p.name}", p) for c in classes for p in c.params]


def test_first_party_defaults_satisfy_their_declared_ranges():
    checked = _first_party()
    assert any(p.ge is not None or p.gt is not None for _, p in checked), "no bounds declared"
    for where, p in checked:
        if p.default is not None:
            p.check(p.default, where)


class Stepper(Detector):
    id = "t.steps"
    applies_to = ("classifier",)
    params = (Param("steps", int, 10, "steps", ge=1), Param("lr", float, 0.1, "step size", gt=0))
    ran = False

    def run(self, target, params, rng):  # pragma: no cover - must never run
        Stepper.ran = True
        raise AssertionError("a detector ran with an invalid parameter")


class StepperPlugin:
    __test__ = False

    @provscan.hookimpl
    def register_detectors(self):
        return [Stepper]


@pytest.mark.parametrize("bad", ["t.steps.steps=-5", "t.steps.lr=nan", "t.steps.lr=-0.1",
                                 "t.steps.lr=inf"])
def test_verify_refuses_out_of_range_before_anything_runs(bad, tmp_path, run_cli, register_plugin,
                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    register_plugin(StepperPlugin(), name="stepper")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "README.md").write_text("hello\n")
    res = run_cli("verify", tmp_path / "model", "-d", "t.steps", "-p", bad, "--out", tmp_path / "o")
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("error: parameter t.steps."), res.output
    assert not Stepper.ran and not (tmp_path / "o").exists()


@pytest.mark.parametrize("bad", [["--steps", "-5"], ["--blend", "nan"], ["--keys", "0"]])
def test_inject_refuses_out_of_range_before_reading_data(bad, tmp_path, run_cli):
    res = run_cli("inject", "taggants", tmp_path / "missing.npz", "--out", tmp_path / "o",
                  "--secret", tmp_path / "s.json", *bad)
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and "parameter taggants." in res.output, res.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("bad", ["backdoor.max-margin.steps=-5", "backdoor.max-margin.lr=nan",
                                 "taggants.alpha=1.5"])
def test_first_party_detectors_refuse_out_of_range(bad, tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "README.md").write_text("hello\n")
    res = run_cli("verify", tmp_path / "model", "-d", bad.partition("=")[0].rpartition(".")[0], "-p", bad)
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("error: parameter "), res.output
