"""The durable queue: accepted deliveries survive a restart, duplicates queue nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest
from provscan_mlflow.queue import Queue, lock_queue

from provscan.errors import ProvscanError


def test_accept_claim_finish(tmp_path):
    q = Queue(tmp_path / "q.sqlite")
    assert q.accept("d1", "model_version.created", "clf", "1") == ("queued", 1)
    assert q.accept("d1", "model_version.created", "clf", "1") == ("duplicate", 1)
    # a second event for a version whose job is still pending joins it
    assert q.accept("d2", "model_version_alias.created", "clf", "1") == ("joined", 1)
    assert q.accept("d3", "model_version.created", "clf", "2") == ("queued", 2)
    job = q.claim("w")
    assert (job.id, job.version, job.attempts) == (1, "1", 1)
    # a running job is not joined: a new event for it queues a fresh scan
    assert q.accept("d4", "model_version_alias.created", "clf", "1") == ("queued", 3)
    assert q.finish(job.id, "w", "pass")
    assert not q.finish(job.id, "w", "pass")  # only once
    assert q.counts() == {"pending": 2, "running": 0, "done": 1, "failed": 0}


def test_accepted_delivery_survives_a_killed_process(tmp_path):
    """Accept in a child process that is then killed hard: the job is there after a restart."""
    db = tmp_path / "q.sqlite"
    code = (
        "import os, sys\n"
        "from provscan_mlflow.queue import Queue\n"
        f"q = Queue({str(db)!r})\n"
        "q.accept('d1', 'model_version.created', 'clf', '7')\n"
        "job = q.claim('dead-worker')\n"
        "q.set_scan_run(job.id, 'run-1')\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9
    q = Queue(db)
    assert q.counts()["running"] == 1
    assert q.requeue_orphans() == 1
    job = q.claim("new-worker")
    assert (job.version, job.attempts, job.scan_run_id) == ("7", 2, "run-1")
    assert q.accept("d1", "model_version.created", "clf", "7")[0] == "duplicate"


def test_retry_backoff_and_give_up(tmp_path):
    q = Queue(tmp_path / "q.sqlite")
    q.enqueue("clf", "1", "backfill")
    job = q.claim("w", now=0)
    assert q.retry_later(job.id, "w", "registry down", delay=60, max_attempts=2) == "pending"
    assert q.claim("w") is None  # not due yet
    import time
    job = q.claim("w", now=time.time() + 61)
    assert job.attempts == 2
    assert q.retry_later(job.id, "w", "registry down", delay=60, max_attempts=2) == "failed"
    assert q.counts()["failed"] == 1


def test_graceful_release_is_not_an_attempt(tmp_path):
    q = Queue(tmp_path / "q.sqlite")
    q.enqueue("clf", "1", "backfill")
    assert q.claim("w").attempts == 1
    assert q.release("w") == 1
    assert q.claim("w2").attempts == 1


def test_one_receiver_per_queue(tmp_path):
    db = tmp_path / "q.sqlite"
    held = lock_queue(db)
    try:
        with pytest.raises(ProvscanError, match="in use"):
            lock_queue(db)
    finally:
        held.close()
    lock_queue(db).close()


def test_prune_keeps_recent_deliveries(tmp_path):
    q = Queue(tmp_path / "q.sqlite")
    q.accept("old", "model_version.created", "clf", "1", now=0)
    q.accept("new", "model_version.created", "clf", "2")
    assert q.prune_deliveries(3600) == 1
    assert q.accept("new", "model_version.created", "clf", "2")[0] == "duplicate"
