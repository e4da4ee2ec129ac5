"""CLI start-up: ``provscan --help`` and ``provscan plugins`` against ``python -c pass``, and against
the same commands at an older commit, in one run.

Every row is a fresh process; CPU time is user + system of the child (``resource.getrusage``
with ``RUSAGE_CHILDREN``, before/after each run), wall time is ``time.perf_counter``. Rows are
interleaved (pass, help, plugins, baseline help, baseline plugins, ...) ``--repeats`` times and the
median is reported, so machine load hits every row alike.

The baseline (``--baseline REV``) is checked out with ``git worktree add`` into a temporary folder and installed editable (``--no-deps``, with its
first-party plugins) into a temporary venv that sees this interpreter's site packages (torch,
transformers, ... are shared; only provscan and its plugins differ). Both venvs load every
installed plugin, as a user's would. Writes ``docs/benchmarks/cli_startup.md``::

    python benchmarks/cli_startup.py --baseline 6209b1a
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks" / "cli_startup.md"


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVSCAN_", "PYTHON"))}
    env["PROVSCAN_QUIET"] = "1"
    return env


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds user+sys, wall seconds) of one run of ``cmd``; it must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=600)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def baseline_venv(rev: str, work: Path) -> tuple[Path, str]:
    """A venv with provscan and its plugins at ``rev`` (editable, no deps); (its bin dir, commit)."""
    tree = work / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
                   check=True, capture_output=True)
    commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The baseline venv sees this interpreter's packages (torch, ...) through a .pth file, but not
    # its provscan: the editable installs below go into the baseline venv only.
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    here = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    base_site = [p for p in sys.path if p.endswith("site-packages") and p not in here]
    (site / "zz_shared.pth").write_text("\n".join(dict.fromkeys(base_site)) + "\n")
    plugins = sorted(p.parent for p in (tree / "plugins").glob("*/pyproject.toml"))
    args = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
            "--no-build-isolation", "-e", str(tree)]
    for p in plugins:
        args += ["-e", str(p)]
    subprocess.run(args, check=True, env=clean_env())
    return venv / "bin", commit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default=None, help="git revision to compare with (e.g. 6209b1a)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    env = clean_env()
    bindir = Path(sys.executable).parent
    here_commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip()
    rows: dict[str, list[str]] = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "provscan --help": [str(bindir / "provscan"), "--help"],
        "provscan plugins": [str(bindir / "provscan"), "plugins"],
    }
    work = Path(tempfile.mkdtemp(prefix="provscan-startup-"))
    base_commit = None
    try:
        if args.baseline:
            base_bin, base_commit = baseline_venv(args.baseline, work)
            rows[f"provscan --help @ {base_commit}"] = [str(base_bin / "provscan"), "--help"]
            rows[f"provscan plugins @ {base_commit}"] = [str(base_bin / "provscan"), "plugins"]
        for cmd in rows.values():  # warm the page cache and the bytecode caches
            timed(cmd, env)
        cpu: dict[str, list[float]] = {k: [] for k in rows}
        wall: dict[str, list[float]] = {k: [] for k in rows}
        for _ in range(args.repeats):
            for name, cmd in rows.items():
                c, w = timed(cmd, env)
                cpu[name].append(c)
                wall[name].append(w)
    finally:
        if args.baseline:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "tree")],
                           capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    med_wall = {k: statistics.median(v) for k, v in wall.items()}
    ref = med_cpu["python -c pass"]
    lines = [
        "# CLI start-up",
        "",
        f"Reproduce: `python benchmarks/cli_startup.py{' --baseline ' + args.baseline if args.baseline else ''}` "
        f"(this tree at `{here_commit}`; median of {args.repeats} interleaved runs per row; "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}).",
        "",
        "CPU = user + system time of the child process (`getrusage(RUSAGE_CHILDREN)`); every row",
        "loads every installed plugin (all first-party plugins of each tree). The baseline rows run the same",
        "commands at the older commit, installed editable in a venv that shares the same torch,",
        "transformers, scipy and scikit-learn.",
        "",
        "| command | CPU s | wall s | CPU / `python -c pass` |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in rows:
        lines.append(f"| `{name}` | {med_cpu[name]:.3f} | {med_wall[name]:.3f} | {med_cpu[name] / ref:.1f}x |")
    if base_commit:
        lines += ["", "Speed-up over the baseline (CPU, median):", ""]
        for cmd in ("--help", "plugins"):
            old, new = med_cpu[f"provscan {cmd} @ {base_commit}"], med_cpu[f"provscan {cmd}"]
            lines.append(f"- `provscan {cmd}`: {old:.2f} s → {new:.2f} s CPU ({old / new:.1f}x less)")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
