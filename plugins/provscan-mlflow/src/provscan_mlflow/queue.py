"""A durable work queue in one SQLite file (WAL, ``synchronous=FULL``).

``deliveries`` remembers every accepted webhook delivery id (a redelivery or a replay of the same id
queues nothing); ``jobs`` holds one row per model version to scan, with its state:

``pending`` → ``running`` (claimed by a worker) → ``done`` (scanned and written back) or
``failed`` (gave up after ``max_attempts`` transient errors). A delivery is acknowledged only
after the transaction that records it and its job has committed, so a crash after the answer loses
nothing; a crash before it makes MLflow retry the same delivery id, which the table deduplicates.
``running`` rows left by a process that died are put back to ``pending`` when the receiver starts
(one receiver per queue file, enforced by :func:`lock_queue`). A new event for a version that
already has a pending job joins that job instead of queueing a second scan. ``expected_aliases``
holds the alias assignments the gate itself is about to make, so that their webhook events are
not taken for new triggers.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from provscan import ProvscanError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    received_at REAL NOT NULL,
    event TEXT NOT NULL,
    job_id INTEGER
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    trigger TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    owner TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    scan_run_id TEXT,
    verdict TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS expected_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, not_before, id);
CREATE INDEX IF NOT EXISTS jobs_version ON jobs (name, version, state);
"""


@dataclass(frozen=True)
class Job:
    id: int
    name: str
    version: str
    trigger: str
    attempts: int
    scan_run_id: str | None


class Queue:
    """Thread-safe access to the queue file (one connection, one lock, short transactions)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('id', ?)", (str(uuid.uuid4()),))
        self.id = str(self._db.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()[0])
        os.chmod(self.path, 0o600)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self, fn: Any) -> Any:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return out

    # ------------------------------------------------------------------ producers
    def accept(self, delivery_id: str, event: str, name: str, version: str,
               now: float | None = None) -> tuple[str, int | None]:
        """Record a delivery and its job in one transaction.

        Returns ``("duplicate", job_id)`` for an id already accepted (nothing queued),
        ``("joined", job_id)`` when a pending job for the version absorbed it, else
        ``("queued", job_id)``.
        """
        now = time.time() if now is None else now

        def tx(db: sqlite3.Connection) -> tuple[str, int | None]:
            seen = db.execute("SELECT job_id FROM deliveries WHERE delivery_id = ?",
                              (delivery_id,)).fetchone()
            if seen is not None:
                return "duplicate", seen[0]
            status, job_id = self._add_job(db, name, version, f"{event} {delivery_id}", now)
            db.execute("INSERT INTO deliveries VALUES (?, ?, ?, ?)", (delivery_id, now, event, job_id))
            return status, job_id

        return self._tx(tx)

    def record_ignored(self, delivery_id: str, event: str, now: float | None = None) -> bool:
        """Remember an authenticated delivery that queues nothing; False when already seen."""
        now = time.time() if now is None else now

        def tx(db: sqlite3.Connection) -> bool:
            cur = db.execute("INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, NULL)",
                             (delivery_id, now, event))
            return cur.rowcount == 1

        return self._tx(tx)

    def enqueue(self, name: str, version: str, trigger: str, now: float | None = None) -> tuple[str, int]:
        """Queue a scan that no webhook asked for (a backfill)."""
        now = time.time() if now is None else now
        return self._tx(lambda db: self._add_job(db, name, version, trigger, now))

    @staticmethod
    def _add_job(db: sqlite3.Connection, name: str, version: str, trigger: str,
                 now: float) -> tuple[str, int]:
        row = db.execute("SELECT id FROM jobs WHERE name = ? AND version = ? AND state = 'pending' "
                         "ORDER BY id LIMIT 1", (name, version)).fetchone()
        if row is not None:
            return "joined", int(row[0])
        cur = db.execute("INSERT INTO jobs (name, version, trigger, state, created_at) "
                         "VALUES (?, ?, ?, 'pending', ?)", (name, version, trigger, now))
        return "queued", int(cur.lastrowid or 0)

    def expect_alias(self, name: str, alias: str, version: str) -> None:
        """The gate is about to set ``alias`` → ``version``: its webhook event is not a new trigger."""
        self._tx(lambda db: db.execute("INSERT INTO expected_aliases VALUES (?, ?, ?, ?)",
                                       (name, alias, version, time.time())))

    def consume_expected_alias(self, name: str, alias: str, version: str,
                               max_age_s: float = 24 * 3600) -> bool:
        """True (and forgotten) when this alias event is one the gate caused itself."""
        def tx(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM expected_aliases WHERE created_at < ?", (time.time() - max_age_s,))
            row = db.execute("SELECT rowid FROM expected_aliases WHERE name = ? AND alias = ? AND version = ? "
                             "ORDER BY rowid LIMIT 1", (name, alias, version)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM expected_aliases WHERE rowid = ?", (row[0],))
            return True

        return self._tx(tx)

    # ------------------------------------------------------------------ workers
    def claim(self, owner: str, now: float | None = None) -> Job | None:
        """Take the oldest due pending job (marks it running, counts the attempt)."""
        now = time.time() if now is None else now

        def tx(db: sqlite3.Connection) -> Job | None:
            row = db.execute("SELECT id, name, version, trigger, attempts, scan_run_id FROM jobs "
                             "WHERE state = 'pending' AND not_before <= ? ORDER BY id LIMIT 1",
                             (now,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET state = 'running', owner = ?, attempts = attempts + 1, "
                       "started_at = ? WHERE id = ?", (owner, now, row[0]))
            return Job(row[0], row[1], row[2], row[3], row[4] + 1, row[5])

        return self._tx(tx)

    def set_scan_run(self, job_id: int, run_id: str) -> None:
        """Remember the MLflow run that holds this job's artifacts (reused by a retry)."""
        self._tx(lambda db: db.execute("UPDATE jobs SET scan_run_id = ? WHERE id = ?", (run_id, job_id)))

    def finish(self, job_id: int, owner: str, verdict: str) -> bool:
        """Mark a running job done; False when this owner no longer holds it."""
        def tx(db: sqlite3.Connection) -> bool:
            cur = db.execute("UPDATE jobs SET state = 'done', verdict = ?, finished_at = ?, "
                             "error = NULL WHERE id = ? AND owner = ? AND state = 'running'",
                             (verdict, time.time(), job_id, owner))
            return cur.rowcount == 1

        return self._tx(tx)

    def retry_later(self, job_id: int, owner: str, error: str, delay: float,
                    max_attempts: int) -> str:
        """After a transient error: back to pending after ``delay`` s, or failed at the cap."""
        def tx(db: sqlite3.Connection) -> str:
            row = db.execute("SELECT attempts FROM jobs WHERE id = ? AND owner = ? AND state = 'running'",
                             (job_id, owner)).fetchone()
            if row is None:
                return "lost"
            state = "failed" if row[0] >= max_attempts else "pending"
            db.execute("UPDATE jobs SET state = ?, error = ?, not_before = ?, finished_at = ?, "
                       "owner = NULL WHERE id = ?",
                       (state, error[:2000], time.time() + delay,
                        time.time() if state == "failed" else None, job_id))
            return state

        return self._tx(tx)

    def release(self, owner: str) -> int:
        """Put this owner's running jobs back to pending (graceful shutdown): not an attempt."""
        return self._tx(lambda db: db.execute(
            "UPDATE jobs SET state = 'pending', owner = NULL, attempts = MAX(attempts - 1, 0) "
            "WHERE state = 'running' AND owner = ?", (owner,)).rowcount)

    def requeue_orphans(self) -> int:
        """At start-up: running jobs of a process that died go back to pending."""
        return self._tx(lambda db: db.execute(
            "UPDATE jobs SET state = 'pending', owner = NULL WHERE state = 'running'").rowcount)

    def prune_deliveries(self, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        return self._tx(lambda db: db.execute(
            "DELETE FROM deliveries WHERE received_at < ?", (cutoff,)).rowcount)

    # ------------------------------------------------------------------ inspection
    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        out = {"pending": 0, "running": 0, "done": 0, "failed": 0}
        out.update({state: int(n) for state, n in rows})
        return out

    def jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute("SELECT * FROM jobs ORDER BY id")
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def lock_queue(path: Path | str) -> IO[bytes]:
    """Hold an exclusive lock next to the queue file for this process's lifetime.

    A second receiver on the same queue would requeue the first one's running jobs; it is refused.
    """
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "ab")  # noqa: SIM115 - kept open to hold the lock
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ProvscanError(f"queue {path} is in use by another receiver") from None
    return handle
