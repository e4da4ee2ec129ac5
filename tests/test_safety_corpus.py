"""Done-when check of issue 12: every input of the tests' malicious and hostile corpus (and the
regression corpus the fuzzer found) is judged by ``provscan inspect`` in under 10 s and 1 GB of
memory, and none ends in exit 0 (a pass) or exit 2 (an input error instead of a verdict)."""

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


def _judge_measured(path: Path) -> tuple[int, float, int, str]:
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child: become the CLI
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.environ["PROVSCAN_QUIET"] = "1"
            os.execv(sys.executable, [sys.executable, "-m", "provscan", "inspect", "--json", str(path)])
        finally:
            os._exit(127)
    deadline = start + MAX_SECONDS * 6
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            done, status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.02)
    elapsed = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    return code, elapsed, usage.ru_maxrss * 1024, ""


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
        code, seconds, rss, _ = _judge_measured(path)
        rows.append(f"{name:55s} exit {code}  {seconds:6.2f} s  {rss / 2**20:7.1f} MiB")
        if code not in (1, 3) or seconds > MAX_SECONDS or rss > MAX_RSS_BYTES:
            bad.append(rows[-1])
    print("\n".join(rows))
    assert not (tmp_path / "CANARY").exists()
    assert not bad, "\n".join(bad)
