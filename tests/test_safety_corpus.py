"""Done-when check of issue 12: every input of the tests' malicious and hostile corpus (and the
regression corpus the fuzzer found) is judged by ``provscan inspect`` in under 10 s and 1 GB of
memory, and none ends in exit 0 (a pass) or exit 2 (an input error instead of a verdict).
Slow: about 60 inputs, each in a fresh process (a few minutes on 2 cores)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import malicious_checkpoints as m  # noqa: E402
from fuzz_regressions import REGRESSIONS  # noqa: E402

MAX_SECONDS = 10.0
MAX_RSS_BYTES = 1 << 30


#: runs ``provscan inspect --json PATH`` in a fresh process; the clock starts after the imports
#: that every command pays (interpreter, torch through the default plugins), so it measures the
#: judgement, not the start-up; the peak RSS covers the whole process
DRIVER = """
import os, sys, time
import provscan.cli, provscan.default_plugins.loaders, provscan.commands.inspect
sys.argv = ["provscan", "inspect", "--json", sys.argv[1]]
start = time.monotonic()
code = 0
try:
    provscan.cli.main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 2
with open(os.environ["PROVSCAN_JUDGE_TIME"], "w") as f:
    f.write(str(time.monotonic() - start))
sys.stdout.flush()
os._exit(code)
"""


def _judge_measured(path: Path, clock: Path) -> tuple[int, float, int]:
    """(exit code, seconds to judge, peak RSS bytes of the whole process)."""
    pid = os.fork()
    if pid == 0:  # child: become the CLI
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.environ.update(PROVSCAN_QUIET="1", PROVSCAN_JUDGE_TIME=str(clock))
            os.execv(sys.executable, [sys.executable, "-c", DRIVER, str(path)])
        finally:
            os._exit(127)
    deadline = time.monotonic() + 120
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            done, status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.02)
    seconds = float(clock.read_text()) if clock.exists() else float("inf")
    return os.waitstatus_to_exitcode(status), seconds, usage.ru_maxrss * 1024


def _corpus(root: Path) -> dict[str, Path]:
    canary = root / "CANARY"
    cases = {}
    for name, build in m.MALICIOUS.items():
        cases["malicious/" + name] = build(root / "malicious" / name, canary)
    for name, build in m.HOSTILE.items():
        cases["hostile/" + name] = build(root / "hostile" / name)
    for name, build in REGRESSIONS.items():
        cases["fuzz/" + name] = build(root / "fuzz" / name)
    return cases


@pytest.mark.slow
def test_every_corpus_input_gets_a_bounded_verdict(tmp_path):
    cases = _corpus(tmp_path)
    rows, bad = [], []
    for name, path in sorted(cases.items()):
        code, seconds, rss = _judge_measured(path, tmp_path / f"clock-{len(rows)}")
        rows.append(f"{name:55s} exit {code}  {seconds:6.2f} s  {rss / 2**20:7.1f} MiB")
        if code not in (1, 3) or seconds > MAX_SECONDS or rss > MAX_RSS_BYTES:
            bad.append(rows[-1])
    print("\n".join(rows))
    assert not (tmp_path / "CANARY").exists()
    assert not bad, "\n".join(bad)
