"""`verify-many --engine ray` on a real two-node Ray cluster (head + a node with a fake GPU),
inside a network namespace with only loopback and a PID namespace of its own (so every connection
stays on 127.0.0.1 and no Ray process can outlive the test). The second node is killed mid-run.
The same fleet then runs on the local engine: both must give the same verdicts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from provscan.certificate import CERT_NAME, check_checkpoint, verify_envelope
from provscan.keys import load_public_key, new_key

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

import fleet_plugin  # noqa: E402
from malicious_checkpoints import reduce_os_system_p2  # noqa: E402

pytest.importorskip("ray")


def _namespaces_work() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not (shutil.which("unshare") and shutil.which("ip")):
        return "unshare or ip is not installed"
    res = subprocess.run(["unshare", "-n", "-p", "-f", "-m", "--mount-proc", "sh", "-c",
                          "ip link set lo up"], capture_output=True, timeout=30)
    return None if res.returncode == 0 else f"unshare failed: {res.stderr.decode().strip()[:200]}"


def build_fleet(work: Path) -> tuple[Path, dict[str, str]]:
    """22 targets: clean, marked (the taggants stand-in), malicious pickles, a crashing detector,
    a missing path, and three that need the fake GPU. Returns the manifest and id -> expected."""
    models = work / "m"
    expected: dict[str, str] = {}
    entries: list[dict] = []
    for i in range(3):  # first, so the GPU node gets them before it is killed
        marked = i == 2
        fleet_plugin.make_model(models / f"g{i}", seed=300 + i, secret=7 if marked else None)
        entries.append({"id": f"gpu-{i}", "location": f"m/g{i}", "detectors": ["fleet.gpu"]})
        expected[f"gpu-{i}"] = "fail" if marked else "pass"
    for i in range(10):
        fleet_plugin.make_model(models / f"c{i}", seed=100 + i)
        entries.append({"id": f"clean-{i}", "location": f"m/c{i}"})
        expected[f"clean-{i}"] = "pass"
    for i in range(5):
        fleet_plugin.make_model(models / f"w{i}", seed=200 + i, secret=7)
        entries.append({"id": f"marked-{i}", "location": f"m/w{i}"})
        expected[f"marked-{i}"] = "fail"
    for i in range(2):
        reduce_os_system_p2(models / f"evil{i}", work / "canary")
        entries.append({"id": f"evil-{i}", "location": f"m/evil{i}"})
        expected[f"evil-{i}"] = "fail"
    entries.append({"id": "crash", "location": "m/c0", "detectors": ["fleet.crash"]})
    expected["crash"] = "inconclusive"
    entries.append({"id": "missing", "location": "m/nothing-here"})
    expected["missing"] = "error"
    source = work / "fleet.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return source, expected


def _ray_processes(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in (p.info["cmdline"] or [])):
            found.append(p)
    return found


@pytest.mark.slow
def test_ray_cluster_fleet_survives_a_node_kill_and_matches_local(monkeypatch):
    why = _namespaces_work()
    if why:
        pytest.skip(why)
    # Ray's socket paths must stay under 107 characters: a short folder under /tmp
    work = Path(tempfile.mkdtemp(prefix="pf", dir="/tmp"))
    try:
        monkeypatch.setenv("PROVSCAN_HOME", str(work / "home"))
        new_key("fleet")
        source, expected = build_fleet(work)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
               "PROVSCAN_HOME": str(work / "home"), "PROVSCAN_QUIET": "1", "OMP_NUM_THREADS": "1"}
        script = f"ip link set lo up && exec {sys.executable} {TESTS / 'fleet_ray_cluster.py'} {work} {source} fleet"
        res = subprocess.run(["unshare", "-n", "-p", "-f", "-m", "--mount-proc", "sh", "-c", script],
                             env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        assert not _ray_processes(str(work)), "Ray processes outlived the test cluster"
        out = json.loads((work / "result.json").read_text())

        by_id = {r["name"].rsplit("-", 1)[0]: r for r in out["ray_rows"]}
        assert len(out["ray_rows"]) == len(expected) == 22
        assert {k: by_id[k]["status"] for k in expected} == expected
        # the second node was killed while scanning a target; that target was retried elsewhere
        assert out["killed_after"] is not None and out["killed_after"] < len(expected)
        assert out["killed_inflight"]
        for loc in out["killed_inflight"]:
            runs = [x.split(" ")[2] for x in out["log"] if x.split(" ")[1] == loc]
            (row,) = [r for r in out["ray_rows"] if r["location"] == loc]
            assert runs[0] == out["gpu_node"] and row["node"] != out["gpu_node"] and len(runs) >= 2
        # the GPU detector ran only on the node that has the resource
        pub = load_public_key("fleet")
        for i in range(3):
            row = by_id[f"gpu-{i}"]
            report = json.loads((work / "ray-out/targets" / row["name"] / "report.json").read_text())
            (ev,) = [e for e in report["evidence"] if e["detector"] == "fleet.gpu"]
            assert ev["details"]["node"] == out["gpu_node"]
        assert {by_id[k]["node"] for k in by_id if not k.startswith("gpu") and k != "missing"} <= set(out["nodes"])
        # every certificate verifies against its files; identical verdicts on the local engine
        for r in out["ray_rows"]:
            if r["status"] == "error":
                continue
            statement = verify_envelope((work / "ray-out" / r["certificate"]).read_bytes(), [pub]).statement
            check_checkpoint(statement, Path(r["location"]))
            assert statement["predicate"]["verdict"]["status"] == r["status"]
            assert r["certificate"].endswith(CERT_NAME)
        summary = [json.loads(x) for x in (work / "ray-out/summary.jsonl").read_text().splitlines()]
        counts = {s: sum(r["status"] == s for r in summary) for s in ("pass", "fail", "inconclusive", "error")}
        assert counts == {"pass": 12, "fail": 8, "inconclusive": 1, "error": 1}
        local = {r["name"]: (r["status"], r["digest"], r["key"]) for r in out["local_rows"]}
        assert local == {r["name"]: (r["status"], r["digest"], r["key"]) for r in out["ray_rows"]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
