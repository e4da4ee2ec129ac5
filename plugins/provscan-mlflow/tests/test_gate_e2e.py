"""End to end with a real MLflow server and MLflow's own webhooks.

Versions of a clean classifier (safetensors) and of a pickle with an ``os.system`` payload are
registered; MLflow calls the provscan receiver, which scans and writes back. The assertions read
what MLflow itself reports. The receiver is then SIGKILLed mid-scan and restarted: the event is
finished exactly once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from provscan.architectures import mlp, small_cnn
from provscan.classifier_card import save_classifier

pytestmark = pytest.mark.slow
EVENTS = ["model_version.created", "model_version_alias.created"]


class _Payload:
    """Pickles as a call to ``os.system(cmd)`` (never unpickled here)."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def clean_model(out: Path, hidden: int | None = None) -> Path:
    torch.manual_seed(0)
    if hidden is None:
        return save_classifier(small_cnn(), out, "small-cnn", {}, 10, (1, 8, 8))
    return save_classifier(mlp(hidden=hidden), out, "mlp", {"hidden": hidden}, 10, (1, 8, 8))


def evil_model(out: Path, canary: Path) -> Path:
    out.mkdir(parents=True)
    (out / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(f"touch {canary}"), protocol=2))
    return out


def register(client, name: str, model_dir: Path) -> str:
    exp = client.get_experiment_by_name("training")
    exp_id = exp.experiment_id if exp else client.create_experiment("training")
    run = client.create_run(exp_id)
    client.log_artifacts(run.info.run_id, str(model_dir), "model")
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return str(mv.version)


def wait_done(receiver, client, name: str, version: str) -> dict[str, str]:
    """Wait for the receiver's ``job.done`` line for this version; the tags MLflow then reports."""
    receiver.wait_log(lambda d: d["event"] == "job.done" and d.get("version") == version, timeout=300)
    return client.get_model_version(name, version).tags


def statement_of(cert: Path) -> dict:
    """The statement inside a DSSE envelope (read only after ``provscan cert verify`` passed)."""
    return json.loads(base64.b64decode(json.loads(cert.read_bytes())["payload"]))


def jobs(queue: Path) -> list[dict]:
    db = sqlite3.connect(queue)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM jobs ORDER BY id")]
    finally:
        db.close()


def test_webhook_gate_end_to_end(mlflow_server, receiver, gate_home, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    name = f"gate-clf-{os.getpid()}"
    receiver.start()
    client.create_webhook(name=f"provscan-{name}", url=f"{receiver.url}/mlflow", events=EVENTS,
                          secret=receiver.env["PROVSCAN_MLFLOW_WEBHOOK_SECRET"])

    canary = tmp_path / "PWNED"
    clean_v = register(client, name, clean_model(tmp_path / "clean"))
    evil_v = register(client, name, evil_model(tmp_path / "evil", canary))

    # --- clean version: pass, signed certificate, alias
    tags = wait_done(receiver, client, name, clean_v)
    assert tags["provscan.verdict"] == "pass", tags
    assert tags["provscan.policy"].startswith("fail-closed sha256:")
    run_id = tags["provscan.run_id"]
    listed = {f.path for f in client.list_artifacts(run_id, "provscan")}
    assert listed == {f"provscan/{n}" for n in ("certificate.intoto.json", "report.json", "report.sarif",
                                               "report.txt")}
    local = Path(client.download_artifacts(run_id, "provscan", str(tmp_path / "dl")))
    cert = local / "certificate.intoto.json"
    assert hashlib.sha256(cert.read_bytes()).hexdigest() == tags["provscan.certificate.sha256"]
    verify = subprocess.run([sys.executable, "-m", "provscan", "cert", "verify", str(cert), "--pubkey", "gate",
                             "--checkpoint", str(tmp_path / "clean")], env=gate_home, capture_output=True,
                            text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    mv = client.get_model_version(name, clean_v)
    assert statement_of(cert)["subject"][0]["uri"] == f"models:/{name}/{clean_v}"
    assert statement_of(cert)["subject"][0]["annotations"] == {
        "type": "mlflow", "registry": mlflow_server, "name": name, "version": clean_v,
        "source": mv.source, "run_id": mv.run_id}
    assert client.get_model_version_by_alias(name, "certified").version == clean_v

    # --- the payload pickle: fail, nothing executed, alias untouched
    tags = wait_done(receiver, client, name, evil_v)
    assert tags["provscan.verdict"] == "fail", tags
    assert "file-safety" in tags["provscan.reason"]
    assert "provscan.certificate.sha256" in tags  # a failing scan is certified as failing
    report = json.loads((Path(client.download_artifacts(tags["provscan.run_id"], "provscan/report.json",
                                                        str(tmp_path / "dl2")))).read_text())
    assert report["verdict"]["status"] == "fail"
    assert client.get_model_version_by_alias(name, "certified").version == clean_v
    assert not canary.exists()

    # --- an alias event scans the version it names; the gate's own alias events do not loop
    client.set_registered_model_alias(name, "champion", clean_v)
    receiver.wait_log(lambda d: d["event"] == "job.done" and d.get("version") == clean_v
                      and d["job"] > 2, timeout=300)
    own = [d for d in receiver.lines() if d["event"] == "delivery.ignored"]
    assert own and all(d["mlflow_event"] == "model_version_alias.created" for d in own)

    # --- SIGKILL mid-scan (a 17 MB model, so the scan takes a while), restart: finished once
    big_v = register(client, name, clean_model(tmp_path / "big", hidden=2048))
    started = receiver.wait_log(lambda d: d["event"] == "job.started" and d["version"] == big_v)
    assert receiver.stop(signal.SIGKILL) == -signal.SIGKILL
    killed = [j for j in jobs(receiver.queue) if j["id"] == started["job"]][0]
    assert killed["state"] == "running"  # the kill landed mid-scan
    assert "provscan.verdict" not in client.get_model_version(name, big_v).tags
    receiver.start()
    tags = wait_done(receiver, client, name, big_v)
    assert tags["provscan.verdict"] == "pass"
    finished = [j for j in jobs(receiver.queue) if j["version"] == big_v]
    assert [(j["state"], j["attempts"]) for j in finished] == [("done", 2)]
    done_lines = [d for d in receiver.lines() if d["event"] == "job.done" and d["job"] == started["job"]]
    assert len(done_lines) == 1
    assert finished[0]["scan_run_id"] == tags["provscan.run_id"]  # the retry reused the run
    runs = client.search_runs([client.get_experiment_by_name("provscan-gate").experiment_id],
                              f"tags.`provscan.model.name` = '{name}' and tags.`provscan.model.version` = '{big_v}'")
    assert len(runs) == 1
    assert client.get_model_version_by_alias(name, "certified").version == big_v

    # --- SIGTERM: graceful stop
    assert receiver.stop(signal.SIGTERM) == 0
    assert receiver.lines()[-1]["event"] == "receiver.stopped"

    # --- provscan verify models:/NAME@ALIAS from the command line (registry from the environment)
    env = {**gate_home, "MLFLOW_TRACKING_URI": mlflow_server}
    out = subprocess.run([sys.executable, "-m", "provscan", "verify", f"models:/{name}@certified", "--sign", "gate",
                          "--policy", "builtin:fail-closed", "--out", str(tmp_path / "cli"), "--format", "json"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((tmp_path / "cli" / "report.json").read_text())["verdict"]["status"] == "pass"
    subject = statement_of(tmp_path / "cli" / "certificate.intoto.json")["subject"][0]
    assert subject["uri"] == f"models:/{name}@certified"
    assert (subject["annotations"]["alias"], subject["annotations"]["version"]) == ("certified", big_v)
    out = subprocess.run([sys.executable, "-m", "provscan", "verify", f"models:/{name}/{big_v}"],
                         env={**env, "PROVSCAN_MLFLOW_MAX_BYTES": "100000"}, capture_output=True, text=True)
    assert out.returncode == 2 and "download cap" in out.stderr, out.stderr[-3000:]

    # --- backfill: every version scanned again, verdicts as before
    out = subprocess.run([sys.executable, "-m", "provscan", "mlflow", "scan-all", name, "--sign", "gate", "--json",
                          "--mlflow-uri", mlflow_server], env=gate_home, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    verdicts = {d["version"]: d["verdict"] for d in map(json.loads, out.stdout.splitlines())}
    assert verdicts == {clean_v: "pass", evil_v: "fail", big_v: "pass"}
    assert client.get_model_version_by_alias(name, "certified").version == big_v
    assert not canary.exists()
