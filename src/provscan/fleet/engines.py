"""Where fleet jobs run: a local pool of worker processes, or Ray tasks on a cluster.

An engine takes the jobs and calls ``on_result`` in the driver for each finished one, in completion
order. A job that raises inside the worker already comes back as an ``error`` result
(:func:`provscan.fleet.job.run_job`); the engines handle the rest: a worker process that dies, a
Ray node that is lost (retried up to ``max_retries`` times, then an ``error`` result), a task no
live node can place, and Ctrl-C (workers stopped, then ``KeyboardInterrupt`` re-raised).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from provscan.errors import ProvscanError
from provscan.fleet.job import Job, JobResult, run_job, worker_info

OnResult = Callable[[JobResult], None]


def default_jobs() -> int:
    """Worker processes by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def lost(job: Job, why: str) -> JobResult:
    return JobResult(job.name, job.location, error=why, worker=worker_info())


def _init_worker(threads: int) -> None:
    # Ctrl-C is the driver's business: it stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("PROVSCAN_QUIET", "1")
    # the CPUs shared between the workers (as Ray does for a 1-CPU task), unless the user chose
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))


class InlineEngine:
    """Runs the jobs in this process, one after another (debugging and tests: no isolation)."""

    def run(self, jobs: Sequence[Job], on_result: OnResult) -> None:
        for job in jobs:
            on_result(run_job(job))


class LocalEngine:
    """A bounded pool of ``jobs`` worker processes (spawned, so each builds its own plugin host),
    each with ``CPUs // jobs`` math-library threads unless ``OMP_NUM_THREADS`` is set."""

    def __init__(self, jobs: int | None = None, max_retries: int = 1) -> None:
        self.jobs = jobs or default_jobs()
        self.max_retries = max_retries

    def run(self, jobs: Sequence[Job], on_result: OnResult) -> None:
        pending = {job.name: job for job in jobs}
        attempts = dict.fromkeys(pending, 0)
        while pending:
            pool = ProcessPoolExecutor(min(self.jobs, len(pending)),
                                       mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_worker,
                                       initargs=(max(1, default_jobs() // self.jobs),))
            broken = False
            try:
                futures: dict[Future[JobResult], Job] = {pool.submit(run_job, j): j
                                                         for j in pending.values()}
                todo = set(futures)
                while todo and not broken:
                    done, todo = wait(todo, return_when=FIRST_COMPLETED)
                    for fut in done:
                        job = futures[fut]
                        try:
                            res = fut.result()
                        except BrokenProcessPool:
                            broken = True
                            continue
                        pending.pop(job.name, None)
                        on_result(res)
            except BaseException:
                _kill(pool)
                raise
            if broken:
                _kill(pool)
                # the pool cannot say which job killed its worker: every unfinished one pays a try
                for name in list(pending):
                    attempts[name] += 1
                    if attempts[name] > self.max_retries:
                        on_result(lost(pending.pop(name), f"worker process died ({attempts[name]} "
                                                          "tries; out of memory or a crash?)"))
            else:
                pool.shutdown(wait=True)


def _kill(pool: ProcessPoolExecutor) -> None:
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.kill()
    for p in procs:
        p.join(timeout=5)


def ray_options(resources: dict[str, float], max_retries: int) -> dict[str, Any]:
    """Ray task options for a job's resource demand (see ``Detector.resources``)."""
    custom = {k: float(v) for k, v in resources.items() if k not in ("CPU", "GPU", "memory") and v}
    opts: dict[str, Any] = {"num_cpus": float(resources.get("CPU", 1)),
                            "num_gpus": float(resources.get("GPU", 0)),
                            "max_retries": max_retries, "retry_exceptions": False}
    if resources.get("memory"):
        opts["memory"] = int(resources["memory"])
    if custom:
        opts["resources"] = custom
    return opts


class RayEngine:
    """Each job a Ray task requesting its detectors' resources; the driver keeps the key.

    Connects to ``address`` (``ray.init(address=...)``; ``None`` uses ``RAY_ADDRESS`` or starts a
    local Ray). A task whose node dies is retried by Ray up to ``max_retries`` times; a task that
    no live node can place any more (its resource is gone from the cluster) becomes an ``error``
    result instead of waiting for ever.
    """

    poll_s = 2.0

    def __init__(self, address: str | None = None, max_retries: int = 3) -> None:
        self.address = address
        self.max_retries = max_retries

    def run(self, jobs: Sequence[Job], on_result: OnResult) -> None:
        try:
            import ray
        except ImportError:
            raise ProvscanError('--engine ray needs Ray: pip install "provscan[ray]"') from None
        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
        task = ray.remote(run_job)
        refs: dict[Any, Job] = {}
        try:
            for job in jobs:
                refs[task.options(**ray_options(job.resources, self.max_retries)).remote(job)] = job
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=self.poll_s)
                for ref in ready:
                    job = refs.pop(ref)
                    try:
                        res = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        lines = [x for x in str(exc).splitlines() if x.strip()]
                        res = lost(job, f"{type(exc).__name__} (up to {self.max_retries} retries): "
                                        f"{lines[-1].strip() if lines else ''}")
                    on_result(res)
                if not ready:
                    self._drop_unplaceable(ray, refs, on_result)
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
        finally:
            if started:
                ray.shutdown()

    def _drop_unplaceable(self, ray: Any, refs: dict[Any, Job], on_result: OnResult) -> None:
        have = ray.cluster_resources()
        for ref, job in list(refs.items()):
            missing = [k for k, v in job.resources.items() if v and have.get(k, 0.0) < float(v)]
            if missing:
                ray.cancel(ref, force=True)
                refs.pop(ref)
                on_result(lost(job, f"no live node offers {', '.join(missing)} any more"))
