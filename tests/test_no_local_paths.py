"""Published outputs never record the signer's filesystem layout: the JSON report, the HTML and
text reports and the certificate name local inputs (the target, the taggants secret, a policy
file, reference directories, a judge's lexicon) by a logical name and a digest."""

import json
import shutil

import numpy as np
import pytest
import torch

import provscan
from provscan.architectures import small_cnn
from provscan.certificate import CERT_NAME, verify_envelope
from provscan.classifier_card import save_classifier
from provscan.detectors import Detector
from provscan.digest import compute_manifest, file_ref, hash_file, logical_location
from provscan.evidence import Claim, Evidence
from provscan.keys import load_public_key
from provscan.params import Param, recorded_params


class PathsDetector(Detector):
    """Takes local files and directories as parameters and returns them in its evidence."""

    id = "t.paths"
    applies_to = ("classifier",)
    params = (Param("data", str, None, "a file", path=True),
              Param("refs", str, None, "a directory", path=True),
              Param("many", str, None, "comma list", path=True),
              Param("label", str, "plain text", "not a path"))

    def run(self, target, params, rng):
        claim = Claim("c", "H0", "exact binomial (greater)", 1.0, 0.5, 0.05, 10)
        return Evidence(self.id, "1", self.plugin, target.kind, [claim], primary="c", params=params)


class PathsPlugin:
    __test__ = False

    @provscan.hookimpl
    def register_detectors(self):
        return [PathsDetector]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    from provscan_taggants.secret import Secret, write_secret

    monkeypatch.setenv("PROVSCAN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PROVSCAN_KEY_PASSPHRASE", raising=False)
    torch.manual_seed(0)
    save_classifier(small_cnn(), tmp_path / "deep" / "models" / "model", "small-cnn", {}, 10, (1, 8, 8))
    keys = np.random.default_rng(0).random((12, 1, 8, 8)).astype(np.float32)
    write_secret(Secret(keys, np.arange(12) % 10, 10), tmp_path / "secrets" / "secret.json")
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "scores.json").write_text("{}")
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "gate.toml").write_text('name = "gate"\n[detectors.taggants]\nrequired = true\n')
    return tmp_path


def test_reports_and_certificate_carry_no_local_path(workspace, run_cli, register_plugin):
    import provscan_taggants.plugin

    register_plugin(PathsPlugin(), name="paths")
    register_plugin(provscan_taggants.plugin, name="taggants", dist=("provscan-taggants", "0.1.0"))
    assert run_cli("keys", "new", "ci").exit_code == 0
    w = workspace
    res = run_cli("verify", w / "deep" / "models" / "model", "-d", "taggants", "-d", "t.paths",
                  "-p", f"taggants.secret={w / 'secrets' / 'secret.json'}",
                  "-p", f"t.paths.data={w / 'a.txt'}", "-p", f"t.paths.refs={w / 'refs'}",
                  "-p", f"t.paths.many={w / 'a.txt'},{w / 'b.txt'}",
                  "--policy", w / "gate.toml", "--sign", "ci", "--out", w / "out",
                  "--format", "json", "--format", "html", "--format", "text")
    assert res.exit_code in (0, 1), res.output  # judged (pass or fail), not an error
    prefixes = {str(w), str(w.resolve()), str(w.parent)}
    for name in ("report.json", "report.html", "report.txt", CERT_NAME):
        text = (w / "out" / name).read_text()
        for prefix in prefixes:
            assert prefix not in text, (name, prefix)
    statement = verify_envelope((w / "out" / CERT_NAME).read_bytes(),
                                [load_public_key(w / "home" / "keys" / "ci.pub")]).statement
    pred = statement["predicate"]
    for prefix in prefixes:
        assert prefix not in json.dumps(statement)
    assert pred["target"]["location"] == "model" and statement["subject"][0]["name"] == "model"
    assert pred["policy"]["origin"] == "gate.toml"
    by_det = {c["detector"]: c["parameters"] for c in pred["claims"]}
    assert by_det["taggants"]["secret"] == {"name": "secret.json",
                                            "sha256": hash_file(w / "secrets" / "secret.json")}
    paths = by_det["t.paths"]
    assert paths["data"] == {"name": "a.txt", "sha256": hash_file(w / "a.txt")}
    assert paths["refs"] == {"name": "refs", "sha256": compute_manifest(w / "refs").root_sha256}
    assert [r["name"] for r in paths["many"]] == ["a.txt", "b.txt"]
    assert paths["label"] == "plain text"


def test_file_ref_and_recorded_params(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x")
    assert file_ref(tmp_path / "d" / "f") == {"name": "f", "sha256": hash_file(tmp_path / "d" / "f")}
    assert file_ref(tmp_path / "d")["sha256"] == compute_manifest(tmp_path / "d").root_sha256
    declared = (Param("p", str, None, path=True), Param("q", str, None))
    out = recorded_params(declared, {"p": str(tmp_path / "gone.json"), "q": str(tmp_path)})
    assert out == {"p": {"name": "gone.json"}, "q": str(tmp_path)}  # undeclared: kept as given
    assert recorded_params(declared, {"p": "gpt-4o-mini"}) == {"p": "gpt-4o-mini"}  # not a path


@pytest.mark.parametrize(("location", "shown"), [
    ("/home/alice/models/bert", "bert"), ("relative/dir/", "dir"),
    ("http://127.0.0.1:8000/v1#m", "http://127.0.0.1:8000/v1#m"),
    ("https://user:secret@host.example/v1", "https://host.example/v1"),
])
def test_logical_location(location, shown):
    assert logical_location(location) == shown


def test_judge_pins_name_the_lexicon_by_file_name_and_digest(tmp_path):
    from provscan_misalignment.corpus import corpus_dir
    from provscan_misalignment.judges import make_judge

    shutil.copy(corpus_dir() / "lexicon.yaml", tmp_path / "my-lexicon.yaml")
    pin = make_judge("rule", model=str(tmp_path / "my-lexicon.yaml")).pin()
    assert pin["model"] == "my-lexicon.yaml" and pin["lexicon_sha256"]
    assert str(tmp_path) not in json.dumps(pin)
