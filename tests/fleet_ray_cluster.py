"""Runs inside ``unshare -n -p -f -m --mount-proc`` (only loopback, own PID namespace) for
tests/test_fleet_ray.py: starts a Ray head and a second node with a ``fake_gpu`` resource, runs a
fleet on Ray (killing the second node once it has done its share), runs the same fleet on the
local engine, stops the cluster and writes what happened to ``<work>/result.json``.

Usage: python fleet_ray_cluster.py WORK SOURCE KEY
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import ray

from provscan.fleet import HostSpec, LocalEngine, RayEngine, run_fleet
from provscan.fleet.job import host_for

PORT = 6391
SPEC = HostSpec(load_entry_points=False, modules=("fleet_plugin",))


def ray_cli(*args: str, **kw) -> subprocess.Popen:
    # the Ray CLI of this interpreter, so that workers run it too (and import provscan)
    return subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def kill_node(proc: subprocess.Popen) -> None:
    """SIGKILL a node: its ``ray start --block`` process and every descendant (the raylet, and the
    workers it spawned, which run in process groups of their own)."""
    root = psutil.Process(proc.pid)
    for p in [*root.children(recursive=True), root]:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


def main(work: Path, source: Path, key: str) -> None:
    temp = str(work / "r")
    log = work / "detector.log"
    log.touch()
    os.environ["PROVSCAN_FLEET_LOG"] = str(log)  # inherited by the Ray nodes and their workers
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    head = ray_cli("start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(PORT),
                   "--num-cpus", "1", "--temp-dir", temp, "--include-dashboard", "false",
                   "--disable-usage-stats", env=env)
    assert head.wait(timeout=120) == 0, "ray start --head failed"
    second = ray_cli("start", "--address", f"127.0.0.1:{PORT}", "--node-ip-address", "127.0.0.1",
                     "--num-cpus", "1", "--resources", '{"fake_gpu": 1}', "--block",
                     env=env, start_new_session=True)
    out: dict = {"events": []}
    try:
        ray.init(address=f"127.0.0.1:{PORT}", logging_level="WARNING", log_to_driver=False)
        deadline = time.monotonic() + 120
        while ray.cluster_resources().get("fake_gpu", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
        out["gpu_node"] = next(nid for nid, res in nodes.items() if res.get("fake_gpu"))
        out["nodes"] = sorted(nodes)
        gpu_names: set[str] = set()
        for line in source.read_text().splitlines():
            if "fleet.gpu" in line:
                gpu_names.add(json.loads(line).get("id"))
        killed: dict = {"at": None, "inflight": []}
        finished: dict[str, str] = {}  # name -> location
        stop = threading.Event()

        def progress(row, counts, done, total):
            out["events"].append([round(time.monotonic(), 2), row["name"], row["status"], row["node"]])
            finished[row["name"]] = row["location"]

        def kill_second_node_mid_task() -> None:
            """Once the GPU targets are done, kill the second node while it is scanning another
            target (its detector logged its start less than 0.3 s ago and sleeps 1 s)."""
            while not stop.is_set() and killed["at"] is None:
                names = dict(finished)
                if all(any(n.startswith(g) for n in names) for g in gpu_names):
                    now = time.time()
                    started = {loc for det, loc, node, at in (x.split(" ") for x in log.read_text().splitlines())
                               if node == out["gpu_node"] and det == "fleet.watermark"
                               and now - float(at) < 0.3}
                    inflight = started - set(names.values())
                    if inflight:
                        kill_node(second)
                        killed.update(at=len(names), inflight=sorted(inflight))
                time.sleep(0.05)

        watcher = threading.Thread(target=kill_second_node_mid_task, daemon=True)
        watcher.start()
        t0 = time.monotonic()
        try:
            result = run_fleet(source, work / "ray-out", key, engine=RayEngine(max_retries=3),
                               host=host_for(SPEC), host_spec=SPEC, detectors=("fleet.watermark",),
                               params={"fleet.watermark": {"delay": "1.0"}}, progress=progress)
        finally:
            stop.set()
            watcher.join()
        out["ray_seconds"] = time.monotonic() - t0
        out["killed_after"] = killed["at"]
        out["killed_inflight"] = killed["inflight"]
        out["log"] = log.read_text().splitlines()
        out["ray_rows"] = result.rows
        ray.shutdown()
    finally:
        if second.poll() is None:
            kill_node(second)
        subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"], stdout=subprocess.DEVNULL,  # own PID namespace:
                       stderr=subprocess.DEVNULL, timeout=120)  # only this test's Ray processes
    t0 = time.monotonic()
    local = run_fleet(source, work / "local-out", key, engine=LocalEngine(jobs=2), host=host_for(SPEC),
                      host_spec=SPEC, detectors=("fleet.watermark",),
                      params={"fleet.watermark": {"delay": "1.0"}})
    out["local_seconds"] = time.monotonic() - t0
    out["local_rows"] = local.rows
    (work / "result.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
