"""Reports: JSON against the shipped schema, SARIF 2.1.0 against a model of the official schema,
self-contained HTML with plots, text with and without colour."""

import json
import re

import jsonschema
import numpy as np
import pytest
import torch

import provscan
from provscan import api
from provscan.architectures import small_cnn
from provscan.certificate import load_schema
from provscan.classifier_card import save_classifier
from provscan.detectors import Detector
from provscan.evidence import Bound, Claim, Evidence
from provscan.report import JsonReporter, TextReporter
from provscan.report import svg as svgplot
from provscan.report.html import HtmlReporter
from provscan.report.sarif import SarifReporter

sarif_model = pytest.importorskip("pydantic_sarif.model")


class FindingDetector(Detector):
    id = "r.finding"
    applies_to = ("classifier",)

    def run(self, target, params, rng):
        a = Claim("anomaly", "no class is a trigger target", "MAD outlier (approximate)", 4.2, 0.002, 0.05,
                  10, exact=False, bound=Bound("Clopper-Pearson", 0.95, 0.01, 0.2), counts={"hits": 3})
        b = Claim("aux", "H0 aux", "exact binomial (greater)", float("inf"), 0.7, 0.05, 5)
        fig = svgplot.bar_chart([1, 5, 2], highlight=[1], threshold=3, title="norms")
        return Evidence(self.id, "0.2", self.plugin, target.kind, [a, b], primary="anomaly",
                        details={"per_class": {"0": 1.0, "1": 5.0}, "examples": [[1, 2], [3, 4]]},
                        figures={"norms <per class>": fig, "png": _png()})


class UnclearDetector(Detector):
    id = "r.unclear"
    applies_to = ("causal-lm",)  # does not apply to a classifier → inconclusive

    def run(self, target, params, rng):  # pragma: no cover - never called
        raise AssertionError


class RaisingDetector(Detector):
    id = "r.raise"

    def run(self, target, params, rng):
        raise ValueError("broken <plugin>")


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class Plugin:
    @provscan.hookimpl
    def register_detectors(self):
        return [FindingDetector, UnclearDetector, RaisingDetector]


@pytest.fixture
def result(tmp_path, register_plugin, provscan_host):
    register_plugin(Plugin(), name="report-test")
    torch.manual_seed(0)
    save_classifier(small_cnn(), tmp_path / "model", "small-cnn", {}, 10, (1, 8, 8))
    return api.verify(tmp_path / "model", detectors=["r.finding", "r.unclear", "r.raise"], formats=(),
                      host=provscan_host)


def test_json_report_validates_against_shipped_schema(result):
    data = json.loads(JsonReporter().render(result))
    jsonschema.validate(data, load_schema("report.v1.json"))
    assert data["verdict"]["status"] == "fail"
    by_id = {e["detector"]: e for e in data["evidence"]}
    assert by_id["r.finding"]["claims"][1]["statistic"] == "inf"
    bad = dict(data, verdict=dict(data["verdict"], status="clean"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, load_schema("report.v1.json"))


def test_sarif_validates_and_lists_failed_and_inconclusive_claims(result):
    data = json.loads(SarifReporter().render(result))
    sarif_model.StaticAnalysisResultsFormatSarifVersion210JsonSchema.model_validate(data)
    assert data["version"] == "2.1.0" and len(data["runs"]) == 1
    run = data["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rules == ["file-safety", "r.finding", "r.unclear", "r.raise", "provscan.inconclusive"]
    kinds = {(r["properties"]["detector"], r["ruleId"], r["kind"], r["level"]) for r in run["results"]}
    assert kinds == {("r.finding", "r.finding", "fail", "error"),
                     ("r.unclear", "provscan.inconclusive", "review", "none"),
                     ("r.raise", "provscan.inconclusive", "review", "none")}
    for r in run["results"]:
        assert run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
        assert re.fullmatch(r"[0-9a-f]{64}", r["partialFingerprints"]["provscanClaim/v1"])
    assert {a["hashes"]["sha-256"] for a in run["artifacts"]} == {
        f.sha256 for f in result.scan.manifest.files}
    # a model that would reject an invalid log: the validation can fail
    broken = json.loads(json.dumps(data))
    broken["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(ValueError):
        sarif_model.StaticAnalysisResultsFormatSarifVersion210JsonSchema.model_validate(broken)


def test_sarif_fingerprints_are_stable_across_runs(result, tmp_path, provscan_host):
    again = api.verify(tmp_path / "model", detectors=["r.finding", "r.unclear", "r.raise"], seed=7,
                       formats=(), host=provscan_host)

    def prints(res):
        return [r["partialFingerprints"]["provscanClaim/v1"]
                for r in json.loads(SarifReporter().render(res))["runs"][0]["results"]]

    assert prints(result) == prints(again) and len(set(prints(result))) == 3


def test_html_is_self_contained_with_plots(result):
    html = HtmlReporter().render(result).decode()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert html.count("<svg") >= 2  # the detector's figure + the p-value chart
    assert "data:image/png;base64," in html
    assert "norms &lt;per class&gt;" in html and "broken &lt;plugin&gt;" in html
    assert "no class is a trigger target" in html and "Clopper-Pearson" in html
    assert "per_class" in html


def test_text_colour_only_when_asked(result):
    plain = TextReporter().render(result).decode()
    assert "\x1b[" not in plain and "verdict: fail (exit 1)" in plain
    coloured = TextReporter(color=True).render(result).decode()
    assert "\x1b[31m" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured).split() == plain.split()
