"""Digest throughput: ``provscan digest`` vs ``sha256sum`` over the same files, in one run.

Creates ``--gib`` GiB of random files under a temporary directory in /tmp (one large file holding
half the bytes, the rest split evenly over ``--files`` smaller files, like a sharded checkpoint
plus its small side files), reads them once to warm the page cache, then times, ``--repeats``
times each, alternating:

- ``sha256sum FILE...`` (coreutils, one process, sequential),
- ``provscan digest DIR --json`` as a subprocess (the CLI users run; includes start-up),
- the library call ``compute_manifest(DIR, workers=1)`` and with the default workers.

It checks that every per-file digest equals sha256sum's, writes the median figures to
``docs/benchmarks/digest.md`` and deletes the files. Run:

    nice -n 10 python benchmarks/digest.py --gib 2
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
from pathlib import Path

from provscan.digest import compute_manifest, default_workers

OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "digest.md"
BLOCK = 64 * 1024 * 1024


def make_files(root: Path, total: int, n_small: int) -> list[Path]:
    sizes = [total // 2] + [(total - total // 2) // n_small] * n_small
    paths = []
    for i, size in enumerate(sizes):
        p = root / (f"model-{i:05d}.bin" if i else "big.bin")
        with open(p, "wb") as f:
            left = size
            while left:
                n = min(BLOCK, left)
                f.write(os.urandom(n))
                left -= n
        paths.append(p)
    return paths


def timed(fn: object) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()  # type: ignore[operator]
    return time.perf_counter() - start, out


def run_sha256sum(paths: list[Path]) -> dict[str, str]:
    out = subprocess.run(["sha256sum", *map(str, paths)], check=True, capture_output=True,
                         text=True).stdout
    return {Path(line[66:]).name: line[:64] for line in out.splitlines()}


def run_cli(root: Path) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "provscan", "digest", str(root), "--json"],
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "PROVSCAN_QUIET": "1"}).stdout
    return {f["path"]: f["sha256"] for f in json.loads(out)["files"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0, help="total size (at least 2 for the record)")
    parser.add_argument("--files", type=int, default=8, help="number of smaller files")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if shutil.which("sha256sum") is None:
        print("sha256sum not found", file=sys.stderr)
        return 2
    total = int(args.gib * 1024**3)
    tmp = Path(tempfile.mkdtemp(prefix="provscan-digest-bench-", dir="/tmp"))
    try:
        paths = make_files(tmp, total, args.files)
        size = sum(p.stat().st_size for p in paths)
        run_sha256sum(paths)  # warm the page cache; every timed run reads from memory
        runs: dict[str, list[float]] = {"sha256sum": [], "provscan digest (CLI)": [],
                                        "compute_manifest, 1 worker": [],
                                        f"compute_manifest, {default_workers()} workers": []}
        reference = None
        for _ in range(args.repeats):
            t, ref = timed(lambda: run_sha256sum(paths))
            runs["sha256sum"].append(t)
            reference = ref
            t, cli = timed(lambda: run_cli(tmp))
            runs["provscan digest (CLI)"].append(t)
            assert cli == reference, "provscan digest disagrees with sha256sum"
            t, m1 = timed(lambda: compute_manifest(tmp, workers=1, show_progress=False))
            runs["compute_manifest, 1 worker"].append(t)
            t, mn = timed(lambda: compute_manifest(tmp, show_progress=False))
            runs[f"compute_manifest, {default_workers()} workers"].append(t)
            assert {f.path: f.sha256 for f in m1.files} == reference  # type: ignore[attr-defined]
            assert m1 == mn
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = statistics.median(runs["sha256sum"])
    lines = [
        "# Digest throughput: provscan vs sha256sum",
        "",
        f"{size / 1024**3:.2f} GiB in {len(paths)} files (one of {paths and total // 2 / 1024**3:.2f} GiB, "
        f"{args.files} of {(total - total // 2) / args.files / 1024**2:.0f} MiB), random bytes, page "
        f"cache warm; median of {args.repeats} alternating runs. Every per-file digest was checked "
        "against sha256sum's.",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible "
        f"({len(os.sched_getaffinity(0))} usable), Python {platform.python_version()}, "
        f"{__import__('ssl').OPENSSL_VERSION}. Shared machine: absolute figures are noisy, the "
        "ratio comes from the same run.",
        "",
        "| method | median s | GiB/s | speed vs sha256sum |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, ts in runs.items():
        med = statistics.median(ts)
        lines.append(f"| {name} | {med:.2f} | {size / 1024**3 / med:.2f} | {base / med:.2f}x |")
    lines += [
        "",
        "Reproduce: `nice -n 10 python benchmarks/digest.py --gib 2` (writes this file).",
        "",
        "Notes: SHA-256 of one file is sequential, so the big file bounds the parallel run from",
        "below (it is hashed first, on its own thread, while the other threads take the smaller",
        "files). hashlib uses OpenSSL (SHA-NI where the CPU has it) and releases the GIL while",
        "hashing, so threads scale with free cores. The CLI row includes process start-up (Python,",
        "torch and every installed plugin are imported before any byte is hashed), which dominates",
        "on a loaded 2-core machine; the library rows are the hashing itself.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
