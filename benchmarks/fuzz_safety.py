"""Coverage-guided fuzzing of the file-safety scanners (atheris / libFuzzer), time-boxed.

    python benchmarks/fuzz_safety.py --target pickle --seconds 150 --out /tmp/fuzz
    python benchmarks/fuzz_safety.py --all --seconds 600 --out /tmp/fuzz   # 4 targets, 150 s each

Targets and their oracles (a violation is a *finding*; the input is saved under ``--out``):

- ``pickle``: :func:`analyse_pickle` on the bytes, and the whole-file dispatch under a text name
  (``notes.txt``). A ``safe`` verdict must agree with CPython's own unpickler run with a
  ``find_class`` that only records names (and refuses everything): if the real unpickler asks
  for a global outside the allowlist, or calls anything, the scanner missed it.
- ``zip``: the torch-zip checker on mutated torch archives; seeds are real ``torch.save`` files.
- ``safetensors``: a ``safe`` verdict must agree with the reference parser (``safe_open``).
- ``hfdir``: shard indexes and tokenizer configs (``scan_streams``); a reference judged inside
  the directory must resolve inside it on the file system too.

For every target: no exception may escape, and no verdict may come from the catch-all ("the
scanner could not judge this file"), which marks an unexpected error. Each run prints one JSON
line per target: executions, seconds, findings (distinct messages) and where inputs were saved.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["provscan.safety"]):
    from provscan.safety.allowlist import classify_global
    from provscan.safety.pickle_scan import analyse_pickle
    from provscan.safety.references import outside
    from provscan.safety.report import SafetyVerdict
    from provscan.safety.scan import scan_bytes, scan_streams

CATCH_ALL = "the scanner could not judge this file"
FINDINGS: dict[str, str] = {}
OUT = Path(tempfile.gettempdir()) / "provscan-fuzz"


def _finding(kind: str, message: str, data: bytes) -> None:
    key = f"{kind}: {message}"[:300]
    if key in FINDINGS:
        return
    name = f"{kind}-{hashlib.sha256(data).hexdigest()[:16]}"
    (OUT / name).write_bytes(data)
    FINDINGS[key] = name
    print(f"FINDING {key} -> {OUT / name}", file=sys.stderr, flush=True)


def _stand_in(*args: object, **kwargs: object) -> None:
    return None


class _Recorder(pickle._Unpickler):  # type: ignore[name-defined]
    """The reference unpickler (the pure-Python one: the C one sizes its memo by the largest
    index, so a 50-byte input can take gigabytes), but every global lookup is recorded;
    allowlisted names get harmless stand-ins (so the load goes on), anything else is refused.
    Nothing is imported."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="latin-1")
        self.requested: list[str] = []

    def find_class(self, module: str, name: str):  # noqa: ANN201 - a stand-in or a refusal
        import codecs
        import collections

        qualified = f"{module}.{name}"
        self.requested.append(qualified)
        if qualified == "collections.OrderedDict":
            return collections.OrderedDict
        if qualified == "_codecs.encode":
            return codecs.encode
        if classify_global(qualified) is not None:
            return _stand_in
        raise pickle.UnpicklingError("refused")


def _real_globals(data: bytes) -> list[str]:
    r = _Recorder(data)
    try:
        r.load()
    except Exception:  # noqa: BLE001 - anything the real unpickler raises on junk
        pass
    return r.requested


def fuzz_pickle(data: bytes) -> None:
    a = analyse_pickle(data)
    f = scan_bytes("notes.txt", data)
    for verdict_name, findings in (("analyse", a.inconclusive + a.unsafe), ("dispatch", f.findings)):
        if any(CATCH_ALL in x for x in findings):
            _finding("pickle-crash", f"{verdict_name}: {findings[0][:120]}", data)
    if a.verdict == "safe" or f.verdict == SafetyVerdict.SAFE:
        # a name that is not dotted identifiers fails to import (the scanner's assumption)
        asked = [g for g in _real_globals(data) if classify_global(g) is None
                 and all(p.isidentifier() for p in g.split("."))]
        if asked:
            where = "analyse" if a.verdict == "safe" else "dispatch"
            _finding("pickle-missed", f"{where} safe, unpickler asks for {asked[0]}", data)


def fuzz_zip(data: bytes) -> None:
    f = scan_bytes("model.pt", data)
    if any(CATCH_ALL in x for x in f.findings):
        _finding("zip-crash", f.findings[0][:160], data)


def fuzz_safetensors(data: bytes) -> None:
    f = scan_bytes("model.safetensors", data)
    if any(CATCH_ALL in x for x in f.findings):
        _finding("safetensors-crash", f.findings[0][:160], data)
    if f.verdict == SafetyVerdict.SAFE and f.format == "safetensors" and not _reference_accepts(data):
        _finding("safetensors-missed", "safe, but the reference parser rejects it", data)


def _reference_accepts(data: bytes) -> bool:
    from safetensors import safe_open

    with tempfile.NamedTemporaryFile(suffix=".safetensors") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            with safe_open(tmp.name, "np"):
                return True
        except Exception:  # noqa: BLE001 - the reference parser's error type
            return False


def fuzz_hfdir(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    ref = fdp.ConsumeUnicodeNoSurrogates(40)
    base = fdp.ConsumeUnicodeNoSurrogates(8).strip("/") if fdp.ConsumeBool() else ""
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    index = json.dumps({"weight_map": {"w": ref}}).encode()
    streams = {f"{base}/model.safetensors.index.json".lstrip("/"): io.BytesIO(index),
               "tokenizer_config.json": io.BytesIO(rest), "config.json": io.BytesIO(b"{}")}
    report = scan_streams(streams)
    for f in report.files:
        if any(CATCH_ALL in x for x in f.findings):
            _finding("hfdir-crash", f.findings[0][:160], data)
    root = "/r/o/o/t"
    real = os.path.normpath(os.path.join(root, base, ref)) if "\x00" not in ref else root
    escapes = not (real == root or real.startswith(root + "/"))
    if escapes and outside(ref, base) is None:
        _finding("hfdir-missed", f"{ref!r} (base {base!r}) escapes but was judged inside", data)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "pickle": fuzz_pickle, "zip": fuzz_zip, "safetensors": fuzz_safetensors, "hfdir": fuzz_hfdir}


def _seeds(target: str, folder: Path) -> None:
    """A small seed corpus built in code (real files of each format)."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds: list[bytes] = []
    if target == "pickle":
        value = {"a": [1, 2.5, "x", b"y", (None, True)], "b": {"c": b"\x80\x04K\x01."}}
        seeds = [pickle.dumps(value, protocol=p) for p in range(6)]
        seeds.append(b"cos\nsystem\n(S'true'\ntR.")
    elif target == "zip":
        import torch

        for sd in ({"w": torch.zeros(3)}, {"a": torch.ones(2, 2), "n": torch.arange(3)}):
            buf = io.BytesIO()
            torch.save(sd, buf)
            seeds.append(buf.getvalue())
    elif target == "safetensors":
        header = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                             "__metadata__": {"format": "pt"}}).encode()
        seeds = [struct.pack("<Q", len(header)) + header + bytes(8)]
    elif target == "hfdir":
        seeds = [b"model-00001.safetensors\x00" + json.dumps({"vocab_file": "vocab.json"}).encode()]
    for i, s in enumerate(seeds):
        (folder / f"seed-{i}").write_bytes(s)


def run_one(target: str, seconds: int, out: Path) -> dict[str, object]:
    """Fuzz one target in a child process (libFuzzer owns the process) and collect its findings."""
    corpus = out / f"corpus-{target}"
    _seeds(target, corpus)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, __file__, "--child", target, "--out", str(out),
                           f"-max_total_time={seconds}", "-rss_limit_mb=2048", "-timeout=20",
                           "-max_len=4096", str(corpus)],
                          capture_output=True, text=True, check=False)
    execs = 0
    for line in proc.stderr.splitlines():
        if line.startswith("#") and "DONE" in line or line.startswith("stat::number_of_executed_units"):
            digits = [int(t) for t in line.replace(":", " ").split() if t.isdigit()]
            execs = max([execs, *digits[-1:]])
    found = sorted({line.split("FINDING ", 1)[1] for line in proc.stderr.splitlines() if "FINDING " in line})
    crashed = [line for line in proc.stderr.splitlines() if "ERROR: libFuzzer" in line or "Traceback" in line]
    return {"target": target, "seconds": round(time.monotonic() - start, 1), "executions": execs,
            "findings": found, "fuzzer_errors": crashed[:3], "exit": proc.returncode, "out": str(out)}


def main() -> None:
    global OUT
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        target = sys.argv[i + 1]
        j = sys.argv.index("--out")
        OUT = Path(sys.argv[j + 1])
        OUT.mkdir(parents=True, exist_ok=True)
        argv = [sys.argv[0], *[a for k, a in enumerate(sys.argv[1:], 1) if k not in (i, i + 1, j, j + 1)],
                "-print_final_stats=1"]
        atheris.Setup(argv, TARGETS[target])
        atheris.Fuzz()
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", choices=sorted(TARGETS))
    ap.add_argument("--all", action="store_true", help="every target, --seconds split evenly")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    targets = sorted(TARGETS) if args.all else [args.target or "pickle"]
    per = max(10, args.seconds // len(targets)) if args.all else args.seconds
    args.out.mkdir(parents=True, exist_ok=True)
    for t in targets:
        print(json.dumps(run_one(t, per, args.out)), flush=True)


if __name__ == "__main__":
    main()
