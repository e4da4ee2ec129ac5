"""File safety of NumPy ``.npy``/``.npz`` files and joblib pickles, all built in code.

Every hostile case has a benign twin that must not be flagged; the object-array payload is proved
live by loading it with ``np.load(allow_pickle=True)`` in a subprocess that creates a canary file.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from provscan.safety.report import SafetyVerdict
from provscan.safety.scan import scan_bytes, scan_path

SAFE, UNSAFE, INCONCLUSIVE = SafetyVerdict.SAFE, SafetyVerdict.UNSAFE, SafetyVerdict.INCONCLUSIVE


class _Touch:
    """Pickles as os.system('touch <canary>')."""

    def __init__(self, canary: Path) -> None:
        self.cmd = f"touch {canary}"

    def __reduce__(self):
        return (os.system, (self.cmd,))


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize("array", [
    np.arange(12, dtype=np.int64).reshape(3, 4),
    np.asfortranarray(np.ones((2, 5), dtype=">f4")),
    np.array([True, False]),
    np.array(["ab", "cde"]),
    np.array([b"x", b"yz"]),
    np.zeros(3, dtype=[("a", "<f8"), ("b", "S3", (2,))]),
    np.array([], dtype=np.float16),
    np.array(7, dtype=np.complex128),
], ids=["int", "fortran-f4", "bool", "unicode", "bytes", "structured", "empty", "scalar"])
def test_plain_npy_is_safe(array: np.ndarray) -> None:
    r = scan_bytes("a.npy", _npy(array))
    assert (r.verdict, r.format) == (SAFE, "numpy"), r.findings
    assert r.info["shape"] == list(array.shape)


def test_object_array_with_reduce_is_unsafe_and_live(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    data = _npy(np.array([_Touch(canary), 1], dtype=object))
    r = scan_bytes("a.npy", data)
    assert r.verdict == UNSAFE and any("object array" in m for m in r.findings), r.findings
    # the twin: the same values in a plain dtype are raw data
    assert scan_bytes("a.npy", _npy(np.array([7, 1], dtype=np.int64))).verdict == SAFE
    # default-deny: an object array of plain values is refused too (numpy's array-rebuilding
    # globals, which a loader would import and call, are not on the allowlist)
    assert scan_bytes("a.npy", _npy(np.array([1, "x"], dtype=object))).verdict == UNSAFE
    # the payload is live: np.load(allow_pickle=True) runs it
    path = tmp_path / "a.npy"
    path.write_bytes(data)
    subprocess.run([sys.executable, "-c", f"import numpy; numpy.load({str(path)!r}, allow_pickle=True)"],
                   check=False, timeout=60, capture_output=True)
    assert canary.exists()


def test_structured_object_field_goes_through_the_pickle_scanner(tmp_path: Path) -> None:
    arr = np.zeros(2, dtype=[("a", "<i4"), ("b", "O")])
    arr["b"][0] = _Touch(tmp_path / "canary")
    r = scan_bytes("a.npy", _npy(arr))
    assert r.verdict == UNSAFE and any("object array" in m for m in r.findings), r.findings
    twin = np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])
    assert scan_bytes("a.npy", _npy(twin)).verdict == SAFE


def _header(text: str, version: tuple[int, int] = (1, 0)) -> bytes:
    raw = text.encode("latin-1")
    length = len(raw).to_bytes(2 if version[0] == 1 else 4, "little")
    return b"\x93NUMPY" + bytes(version) + length + raw


@pytest.mark.parametrize(("data", "verdict"), [
    (_header("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n") + bytes(16), SAFE),  # the twin
    (_header("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n", (2, 0)) + bytes(16), SAFE),
    (_header("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n") + bytes(15), UNSAFE),
    (_header("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n") + bytes(17), UNSAFE),
    (_header("{'descr': '<i8', 'fortran_order': False, 'shape': (2**62, 2**62), }\n") + bytes(16), UNSAFE),
    (_header("{'descr': '<i8', 'fortran_order': False, 'shape': (-1,), }\n"), UNSAFE),
    (_header("{'descr': '<i8', 'fortran_order': False}\n"), UNSAFE),
    (_header("__import__('os').system('true')\n"), UNSAFE),
    (_header("[" * 200 + "]" * 200), UNSAFE),
    (_header("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n", (9, 0)) + bytes(16), INCONCLUSIVE),
    (_header("{'descr': 'x' * 3, 'fortran_order': False, 'shape': (2,), }\n") + bytes(16), UNSAFE),
    (_header("{'descr': '<q9', 'fortran_order': False, 'shape': (2,), }\n") + bytes(16), INCONCLUSIVE),
    (b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 100, UNSAFE),  # header longer than the file and the cap
    (b"\x93NUMPY\x02\x00\xff\xff\xff\x7f", UNSAFE),  # a 2 GiB header announced
    (b"\x93NUMPY\x01\x00", UNSAFE),  # truncated
], ids=["ok", "ok-v2", "short", "trailing", "huge-shape", "negative", "missing-key", "code", "deep",
        "version", "expression", "dtype-unknown", "over-cap", "v2-over-cap", "truncated"])
def test_malformed_headers_get_a_verdict(data: bytes, verdict: SafetyVerdict) -> None:
    r = scan_bytes("a.npy", data)
    assert r.verdict == verdict, r.findings


def _npz(compressed: bool, **arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_members_are_each_judged(compressed: bool, tmp_path: Path) -> None:
    benign = _npz(compressed, w=np.arange(6.0).reshape(2, 3), b=np.zeros(3, dtype=np.int8))
    r = scan_bytes("a.npz", benign)
    assert (r.verdict, r.format, r.info["arrays"]) == (SAFE, "npz", 2), r.findings
    hostile = _npz(compressed, w=np.arange(6.0), b=np.array([_Touch(tmp_path / "c")], dtype=object))
    r = scan_bytes("a.npz", hostile)
    assert r.verdict == UNSAFE and any(m.startswith("b.npy: object array") for m in r.findings), r.findings


def test_npz_with_a_non_npy_member_is_not_safe() -> None:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("w.npy", _npy(np.arange(3)))
        zf.writestr("notes.txt", "hello")
    assert scan_bytes("a.npz", buf.getvalue()).verdict != SAFE


def test_npz_truncated_member_is_unsafe() -> None:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("w.npy", _npy(np.arange(3))[:-4])
    assert scan_bytes("a.npz", buf.getvalue()).verdict == UNSAFE


# --- joblib ------------------------------------------------------------------------------------
joblib = pytest.importorskip("joblib")


def _joblib(tmp_path: Path, value: object, **kw: object) -> Path:
    path = tmp_path / "model.joblib"
    joblib.dump(value, path, **kw)
    return path


def test_joblib_os_system_is_unsafe_and_plain_twin_is_safe(tmp_path: Path) -> None:
    hostile = scan_path(_joblib(tmp_path, {"model": _Touch(tmp_path / "canary")}))
    assert hostile.verdict == UNSAFE
    assert any("system" in m for f in hostile.files for m in f.findings)
    twin = scan_path(_joblib(tmp_path, {"model": [1, 2.5, "x"]}))
    assert twin.verdict == SAFE, twin.to_dict()


def test_compressed_joblib_is_inconclusive(tmp_path: Path) -> None:
    report = scan_path(_joblib(tmp_path, {"model": [1, 2]}, compress=3))
    assert report.verdict == INCONCLUSIVE


def test_fitted_sklearn_joblib_is_refused_by_default_deny(tmp_path: Path) -> None:
    """A real LogisticRegression dump names sklearn and numpy globals: default-deny refuses it.

    There is no scikit-learn allowlist yet (docs/safety.md), so the verdict is unsafe, naming the
    first global outside the allowlist; a loader would import and run that class's code.
    """
    sklearn = pytest.importorskip("sklearn.linear_model")
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.9, 0.1], [0.1, 0.8]])
    model = sklearn.LogisticRegression().fit(x, [0, 1, 1, 0])
    report = scan_path(_joblib(tmp_path, model))
    assert report.verdict == UNSAFE
    assert any("not on the allowlist" in m for f in report.files for m in f.findings)
