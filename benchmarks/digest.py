"""Digest throughput at the hashing limit: provscan vs ``openssl dgst`` and model-signing, one run.

Two cases, random bytes, page cache warm (every file is read once before timing):

- **multi-file**: ``--files`` files of ``--mib`` MiB each (default 4 × 512 MiB, a sharded
  checkpoint). The limit is ``openssl dgst -sha256`` run as one process per usable CPU, the files
  split between them largest-first: SHA-256 of one file is sequential, so files across cores is
  all the parallelism a per-file digest has.
- **single-file**: one file of ``--single-mib`` MiB (default 475). The limit is one
  ``openssl dgst -sha256`` process.

Rows, timed ``--repeats`` times each, alternating: openssl in 1 process, openssl in N processes,
model-signing's own hashing (``model_signing.hashing.Config().use_file_serialization()``,
SHA-256, in process; skipped when the library is missing), provscan's library call
``compute_manifest`` (in process) and the ``provscan digest --json`` CLI (a subprocess, start-up
included). Every per-file digest is checked against openssl's. Writes
``docs/benchmarks/digest.md``. Run (about a minute of hashing plus file creation)::

    python benchmarks/digest.py               # 4 x 512 MiB and 1 x 475 MiB
    python benchmarks/digest.py --mib 64      # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from provscan.digest import compute_manifest, default_workers

OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "digest.md"
BLOCK = 64 * 1024 * 1024


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(BLOCK, left)
            f.write(os.urandom(n))
            left -= n


def split_largest_first(paths: list[Path], parts: int) -> list[list[Path]]:
    """Greedy partition of files over ``parts`` processes by size (largest first)."""
    groups: list[list[Path]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for p in sorted(paths, key=lambda q: -q.stat().st_size):
        i = loads.index(min(loads))
        groups[i].append(p)
        loads[i] += p.stat().st_size
    return [g for g in groups if g]


def openssl(paths: list[Path], processes: int) -> dict[str, str]:
    """Run ``openssl dgst -sha256`` over ``paths`` in ``processes`` parallel processes."""
    procs = [subprocess.Popen(["openssl", "dgst", "-sha256", "-r", *map(str, group)],
                              stdout=subprocess.PIPE, text=True)
             for group in split_largest_first(paths, processes)]
    digests: dict[str, str] = {}
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError("openssl dgst failed")
        for line in out.splitlines():
            digest, name = line.split(" ", 1)
            digests[Path(name.lstrip("*")).name] = digest
    return digests


def provscan_cli(root: Path) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "provscan", "digest", str(root), "--json"],
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "PROVSCAN_QUIET": "1"}).stdout
    return {Path(f["path"]).name: f["sha256"] for f in json.loads(out)["files"]}


def provscan_library(root: Path) -> dict[str, str]:
    manifest = compute_manifest(root, show_progress=False)
    return {Path(f.path).name: f.sha256 for f in manifest.files}


def model_signing_hash(root: Path) -> dict[str, str] | None:
    try:
        from model_signing import hashing
    except ImportError:
        return None
    manifest = hashing.Config().use_file_serialization(hashing_algorithm="sha256").hash(root)
    return {Path(str(d.identifier)).name: d.digest.digest_hex for d in manifest.resource_descriptors()}


def measure(name: str, root: Path, paths: list[Path], repeats: int) -> list[tuple[str, float]]:
    """Median seconds per method for one case; checks every digest against openssl's."""
    cpus = default_workers()
    methods: dict[str, Callable[[], dict[str, str] | None]] = {
        "openssl dgst, 1 process": lambda: openssl(paths, 1),
        f"openssl dgst, {cpus} processes (limit)": lambda: openssl(paths, cpus),
        "model-signing (library, sha256)": lambda: model_signing_hash(root),
        "provscan compute_manifest (library)": lambda: provscan_library(root),
        "provscan digest --json (CLI)": lambda: provscan_cli(root),
    }
    reference = openssl(paths, 1)  # also warms the page cache
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(repeats):
        for method, fn in methods.items():
            start = time.perf_counter()
            got = fn()
            elapsed = time.perf_counter() - start
            if got is None:
                times.pop(method, None)
                continue
            if got != reference:
                raise AssertionError(f"{name}: {method} disagrees with openssl")
            times[method].append(elapsed)
    return [(m, statistics.median(ts)) for m, ts in times.items() if ts]


def table(rows: list[tuple[str, float]], size: int, limit_key: str) -> list[str]:
    limit = dict(rows)[limit_key]
    lines = ["| method | median s | GiB/s | time vs the limit |", "| --- | ---: | ---: | ---: |"]
    for method, med in rows:
        lines.append(f"| {method} | {med:.2f} | {size / 1024**3 / med:.2f} | {med / limit:.2f}x |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4, help="files in the multi-file case")
    parser.add_argument("--mib", type=int, default=512, help="MiB per file in the multi-file case")
    parser.add_argument("--single-mib", type=int, default=475, help="MiB of the single file")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if shutil.which("openssl") is None:
        print("openssl not found", file=sys.stderr)
        return 2
    cpus = default_workers()
    tmp = Path(tempfile.mkdtemp(prefix="provscan-digest-bench-", dir="/tmp"))
    try:
        multi, single = tmp / "multi", tmp / "single"
        multi.mkdir()
        single.mkdir()
        multi_paths = [multi / f"model-{i + 1:05d}-of-{args.files:05d}.safetensors"
                       for i in range(args.files)]
        for p in multi_paths:
            write_random(p, args.mib * 1024**2)
        single_paths = [single / "model.safetensors"]
        write_random(single_paths[0], args.single_mib * 1024**2)
        multi_rows = measure("multi-file", multi, multi_paths, args.repeats)
        single_rows = measure("single-file", single, single_paths, args.repeats)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def ratio(rows: list[tuple[str, float]], key: str, limit_key: str) -> float:
        d = dict(rows)
        return d[key] / d[limit_key]

    limit_multi = f"openssl dgst, {cpus} processes (limit)"
    limit_single = "openssl dgst, 1 process"
    lib = "provscan compute_manifest (library)"
    cli = "provscan digest --json (CLI)"
    lines = [
        "# Digest throughput at the hashing limit",
        "",
        f"Measured by `python benchmarks/digest.py --files {args.files} --mib {args.mib} "
        f"--single-mib {args.single_mib} --repeats {args.repeats}` (writes this page). Random "
        f"bytes, page cache warm, median of {args.repeats} alternating runs; every per-file digest "
        "was checked against openssl's.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs visible ({cpus} usable), Python "
        f"{platform.python_version()}, {__import__('ssl').OPENSSL_VERSION}. The machine was shared "
        "with other work while this ran: absolute figures are noisy, the ratios come from the same "
        "run.",
        "",
        f"## {args.files} files × {args.mib} MiB (limit: openssl in {cpus} parallel processes)",
        "",
        *table(multi_rows, args.files * args.mib * 1024**2, limit_multi),
        "",
        f"## One file of {args.single_mib} MiB (limit: one openssl process)",
        "",
        *table(single_rows, args.single_mib * 1024**2, limit_single),
        "",
        "## Summary",
        "",
        f"- multi-file: provscan library {ratio(multi_rows, lib, limit_multi):.2f}x the limit, "
        f"CLI {ratio(multi_rows, cli, limit_multi):.2f}x (start-up included)",
        f"- single file: provscan library {ratio(single_rows, lib, limit_single):.2f}x the limit, "
        f"CLI {ratio(single_rows, cli, limit_single):.2f}x",
        "",
        "How: each file is read with `readinto` into one reused 1 MiB buffer (small enough that",
        "the bytes are still in cache when SHA-256 reads them) and hashed by hashlib (OpenSSL,",
        "SHA-NI where the CPU has it), which releases the GIL, so a thread per usable CPU hashes",
        "files in parallel, largest first. The earlier design (4 MiB buffers filled by a reader",
        "thread per large file) was measured at 1.41x the multi-file limit and 1.86x the",
        "single-file limit on this machine (issue 10); the rows above are after removing the",
        "reader thread and shrinking the buffer.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
