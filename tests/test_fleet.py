"""`provscan verify-many`: source parsing, resume and cache, --force, changed files, Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provscan.certificate import CERT_NAME, check_checkpoint, verify_envelope
from provscan.errors import ProvscanError
from provscan.fleet import HostSpec, InlineEngine, LocalEngine, run_fleet
from provscan.fleet.job import host_for
from provscan.fleet.source import read_source
from provscan.keys import load_public_key, new_key

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

import fleet_plugin  # noqa: E402
from malicious_checkpoints import reduce_os_system_p2  # noqa: E402

SPEC = HostSpec(load_entry_points=False, modules=("fleet_plugin",))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fleet-models")
    for i in range(2):
        fleet_plugin.make_model(root / f"clean-{i}", seed=100 + i)
    fleet_plugin.make_model(root / "marked", seed=200, secret=7)
    reduce_os_system_p2(root / "evil", root / "canary")
    return root


@pytest.fixture
def fleet_env(tmp_path, monkeypatch, models):
    monkeypatch.setenv("PROVSCAN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PROVSCAN_KEY_PASSPHRASE", raising=False)
    monkeypatch.setenv("PROVSCAN_FLEET_LOG", str(tmp_path / "detector.log"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    new_key("fleet")
    work = tmp_path / "models"
    shutil.copytree(models, work)
    return tmp_path


def invocations(env: Path) -> list[str]:
    log = env / "detector.log"
    return log.read_text().splitlines() if log.exists() else []


def write_source(env: Path, lines: list[str], name: str = "fleet.txt") -> Path:
    src = env / name
    src.write_text("\n".join(lines) + "\n")
    return src


def fleet(env: Path, src: Path, engine=None, **kw):
    return run_fleet(src, env / "out", "fleet", engine=engine or InlineEngine(), host=host_for(SPEC),
                     detectors=("fleet.watermark",), host_spec=SPEC, **kw)


TARGETS = ["models/clean-0", "models/clean-1", "models/marked", "models/evil", "models/missing"]


def test_source_text_and_manifest(tmp_path):
    src = write_source(tmp_path, ["# comment", "", "a/b", "https://host/v1#m", "models:/x/1"])
    entries = read_source(src)
    assert [e.location for e in entries] == [str(tmp_path / "a/b"), "https://host/v1#m", "models:/x/1"]
    assert len({e.name for e in entries}) == 3 and all("/" not in e.name for e in entries)
    man = tmp_path / "fleet.jsonl"
    man.write_text(json.dumps({"location": "m1", "detectors": ["fleet.crash"], "seed": 3}) + "\n"
                   + json.dumps({"location": "m1", "id": "again", "params": {"x": {"k": 1}}}) + "\n")
    a, b = read_source(man)
    assert a.detectors == ("fleet.crash",) and a.seed == 3 and b.params == {"x": {"k": 1}}
    assert a.name != b.name


@pytest.mark.parametrize("lines, message", [
    (["m1", "m1"], "appears twice"),
    (['{"location": 1}'], "location"),
    (['{"location": "m", "detector": ["x"]}'], "unknown keys"),
    (['{"location": "m", "seed": "1"}'], "seed"),
    ([], "no targets"),
])
def test_source_errors(tmp_path, lines, message):
    with pytest.raises(ProvscanError, match=message):
        read_source(write_source(tmp_path, lines))


def test_bad_input_fails_before_any_work(fleet_env):
    src = write_source(fleet_env, ["models/clean-0"])
    with pytest.raises(ProvscanError, match="unknown detector"):
        run_fleet(src, fleet_env / "out", "fleet", engine=InlineEngine(), host=host_for(SPEC),
                  detectors=("nope",), host_spec=SPEC)
    assert not (fleet_env / "out").exists() and invocations(fleet_env) == []


def check_out(env: Path, result) -> None:
    """Every row's certificate verifies against the files; every folder is whole."""
    pub = load_public_key("fleet")
    lines = [json.loads(x) for x in (env / "out/summary.jsonl").read_text().splitlines()]
    assert [r["name"] for r in lines] == [r["name"] for r in result.rows]
    sarif = json.loads((env / "out/summary.sarif").read_text())
    assert len(sarif["runs"]) == sum(r["status"] != "error" for r in result.rows)
    html = (env / "out/summary.html").read_text()
    for r in result.rows:
        folder = env / "out/targets" / r["name"]
        assert f'href="targets/{r["name"]}/report.html"' in html or r["status"] == "error"
        if r["status"] == "error":
            assert sorted(p.name for p in folder.iterdir()) == ["error.txt"]
            continue
        statement = verify_envelope((folder / CERT_NAME).read_bytes(), [pub]).statement
        check_checkpoint(statement, Path(r["location"]))
        assert statement["predicate"]["verdict"]["status"] == r["status"]
    assert not list((env / "out/targets").glob(".*"))


def test_resume_skips_finished_targets_force_and_changed_files(fleet_env):
    src = write_source(fleet_env, TARGETS)
    first = fleet(fleet_env, src)
    assert first.counts == {"pass": 2, "fail": 2, "inconclusive": 0, "error": 1}
    assert first.exit_code == 1
    check_out(fleet_env, first)
    assert len(invocations(fleet_env)) == 3  # the evil pickle is never loaded, the missing one never found
    # a re-run does no detector work; only the errored target is tried again
    again = fleet(fleet_env, src)
    assert len(invocations(fleet_env)) == 3
    assert (again.cached, again.scanned) == (4, 1)
    assert [(r["name"], r["status"]) for r in again.rows] == [(r["name"], r["status"]) for r in first.rows]
    check_out(fleet_env, again)
    # a changed file changes the digest, so that target (only) is scanned again
    shutil.rmtree(fleet_env / "models/clean-1")
    fleet_plugin.make_model(fleet_env / "models/clean-1", seed=999)
    changed = fleet(fleet_env, src)
    assert [x.rsplit(" ", 1)[0] for x in invocations(fleet_env)[3:]] == [
        f"fleet.watermark {fleet_env / 'models/clean-1'} -"]
    check_out(fleet_env, changed)
    # another seed or parameter is another key; --force rescans everything
    fleet(fleet_env, src, params={"fleet.watermark": {"secret": "8"}})
    assert len(invocations(fleet_env)) == 4 + 3
    fleet(fleet_env, src, params={"fleet.watermark": {"secret": "8"}}, force=True)
    assert len(invocations(fleet_env)) == 7 + 3


def test_tampered_certificate_or_other_key_is_rescanned(fleet_env):
    src = write_source(fleet_env, ["models/clean-0"])
    first = fleet(fleet_env, src)
    cert = fleet_env / "out/targets" / first.rows[0]["name"] / CERT_NAME
    cert.write_bytes(cert.read_bytes().replace(b'"signatures":[{', b'"signatures":[{ '))
    fleet(fleet_env, src)
    assert len(invocations(fleet_env)) == 2
    new_key("other")
    run_fleet(src, fleet_env / "out", "other", engine=InlineEngine(), host=host_for(SPEC),
              detectors=("fleet.watermark",), host_spec=SPEC)
    assert len(invocations(fleet_env)) == 3


def test_manifest_overrides_and_crashing_detector(fleet_env):
    man = fleet_env / "fleet.jsonl"
    man.write_text("\n".join(json.dumps(o) for o in [
        {"location": "models/marked"},
        {"location": "models/marked", "id": "wrong-secret", "params": {"fleet.watermark": {"secret": 8}}},
        {"location": "models/clean-0", "detectors": ["fleet.crash"]},
    ]) + "\n")
    result = fleet(fleet_env, man)
    assert [r["status"] for r in result.rows] == ["fail", "pass", "inconclusive"]
    assert "fleet.crash" in " ".join(result.rows[2]["reasons"])
    assert result.exit_code == 1


@pytest.mark.slow
def test_local_engine_pool(fleet_env):
    """Worker processes: the same verdicts as in-process, one target's failure does not stop it."""
    src = write_source(fleet_env, TARGETS)
    result = fleet(fleet_env, src, engine=LocalEngine(jobs=2))
    assert [r["status"] for r in result.rows] == ["pass", "pass", "fail", "fail", "error"]
    assert len({r["node"] for r in result.rows}) >= 1
    check_out(fleet_env, result)


def test_ctrl_c_leaves_no_partial_output(fleet_env):
    names = [f"models/slow-{i}" for i in range(6)]
    for n in names:
        shutil.copytree(fleet_env / "models/clean-0", fleet_env / n)
    src = write_source(fleet_env, names)
    provscan = Path(sys.executable).with_name("provscan")
    cmd = [str(provscan), "verify-many", str(src), "--out", str(fleet_env / "out"), "--sign", "fleet",
           "--plugin", "fleet_plugin", "-d", "fleet.watermark", "-p", "fleet.watermark.delay=1.5",
           "--jobs", "1"]
    proc = subprocess.Popen(cmd, cwd=fleet_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    summary = fleet_env / "out/summary.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (summary.exists() and summary.read_text().strip()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    done = [json.loads(x) for x in summary.read_text().splitlines()]
    assert 1 <= len(done) < len(names)
    folders = sorted(p.name for p in (fleet_env / "out/targets").iterdir())
    assert folders == sorted(r["name"] for r in done)  # nothing half-written, nothing hidden
    for r in done:
        assert {CERT_NAME, "record.dsse.json", "report.json", "report.sarif", "report.html"} <= {
            p.name for p in (fleet_env / "out/targets" / r["name"]).iterdir()}
    before = len(invocations(fleet_env))
    rest = fleet(fleet_env, src, params={"fleet.watermark": {"delay": "1.5"}})
    assert rest.cached == len(done) and rest.scanned == len(names) - len(done)
    assert len(invocations(fleet_env)) == before + len(names) - len(done)
    check_out(fleet_env, rest)


@pytest.mark.parametrize("statuses, code", [
    ([], 0), (["pass"], 0), (["pass", "inconclusive"], 3), (["inconclusive", "error"], 2),
    (["error", "fail", "pass"], 1),
])
def test_exit_code_is_the_worst_verdict(statuses, code):
    from provscan.fleet.summary import fleet_exit_code

    assert fleet_exit_code([{"status": s} for s in statuses]) == code


def test_cli_usage_error_writes_nothing(fleet_env, run_cli):
    src = write_source(fleet_env, ["models/clean-0"])
    res = run_cli("verify-many", src, "--out", fleet_env / "out", "--sign", "fleet", "-d", "nope")
    assert res.exit_code == 2 and "unknown detector" in res.output
    assert not (fleet_env / "out").exists()
