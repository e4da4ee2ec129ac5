"""Fleet scans: many targets, resumable, on a local pool of processes or a Ray cluster.

``provscan verify-many SOURCE --out DIR --sign KEY`` (:mod:`provscan.commands.fleet`) reads the
targets (:mod:`.source`), plans one job per target and skips those already finished with the same
result key (:mod:`.cache`), runs the rest on an engine (:mod:`.engines`) where each worker scans one
target through the ordinary pipeline and returns an unsigned statement (:mod:`.job`), and signs and
writes every result and the fleet summary in the driver (:mod:`.run`, :mod:`.summary`).
See docs/fleet.md.
"""

from provscan.fleet.engines import InlineEngine, LocalEngine, RayEngine
from provscan.fleet.job import HostSpec, Job, JobResult
from provscan.fleet.run import FleetResult, run_fleet

__all__ = ["FleetResult", "HostSpec", "InlineEngine", "Job", "JobResult", "LocalEngine", "RayEngine", "run_fleet"]
