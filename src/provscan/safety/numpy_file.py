"""NumPy ``.npy`` files, checked against the format numpy documents (``numpy.lib.format``).

Layout: the magic ``\\x93NUMPY``, a major and minor version byte (1.0, 2.0 or 3.0), the header
length (2 bytes little-endian for 1.0, 4 bytes for 2.0/3.0), then the header: a Python dict
literal with exactly the keys ``descr``, ``fortran_order`` and ``shape``. The header is parsed
with :func:`ast.literal_eval` only after its length is capped (:data:`MAX_HEADER`, numpy's own
default limit), so nothing is executed and the parse cost is bounded.

- A plain dtype (bool, integers, floats, complex, datetimes, fixed-width bytes/str/void, or a
  structured dtype made of those) is raw data: the file is **safe** when ``shape`` × itemsize
  equals the bytes left after the header, **unsafe** otherwise (the loader would read past the end
  or ignore trailing bytes).
- An object dtype (``|O``, or a structured field with ``O``) means the payload is a pickle that
  ``np.load(allow_pickle=True)`` would run: the payload is judged by the default-deny pickle
  scanner (:mod:`provscan.safety.pickle_scan`), whose verdict is the file's.
- A header provscan does not understand is inconclusive; one that numpy rejects is unsafe.
"""

from __future__ import annotations

import ast
import collections
import lzma
import re
import struct
import zipfile
import zlib
from typing import IO, Any

from provscan.safety.budgets import Budgets
from provscan.safety.pickle_scan import Counter, analyse_pickle
from provscan.safety.report import FileSafety, SafetyVerdict

MAGIC = b"\x93NUMPY"
#: numpy refuses headers longer than this by default (``max_header_size`` of ``np.load``)
MAX_HEADER = 10_000
#: more dimensions than numpy supports (``NPY_MAXDIMS`` is 64 since numpy 2)
MAX_RANK = 64

_SIMPLE = re.compile(r"^([<>|=]?)([biufcmMSUVa])(\d*)(?:\[[a-zA-Z0-9]+\])?$")
_FIXED_SIZES = {"b": {1}, "i": {1, 2, 4, 8}, "u": {1, 2, 4, 8}, "f": {2, 4, 8, 12, 16},
                "c": {8, 16, 24, 32}, "m": {8}, "M": {8}}


class _Bad(Exception):
    """Not a valid .npy header (numpy refuses it): unsafe."""


class _Unknown(Exception):
    """A header provscan does not model: inconclusive."""


def _itemsize(descr: Any, depth: int = 0) -> tuple[int, bool]:
    """(bytes per element, holds Python objects) of a ``descr`` value."""
    if depth > 8:
        raise _Unknown("structured dtype nested deeper than 8 levels")
    if isinstance(descr, str):
        if descr in ("|O", "O", "<O", ">O", "=O"):
            return 8, True
        m = _SIMPLE.match(descr)
        if not m:
            raise _Unknown(f"dtype {descr[:40]!r} not understood")
        kind, digits = m.group(2), m.group(3)
        n = int(digits) if digits and len(digits) <= 12 else None
        if kind in _FIXED_SIZES:
            if n not in _FIXED_SIZES[kind]:
                raise _Bad(f"dtype {descr!r}: invalid size")
            return n, False
        if n is None:
            raise _Bad(f"dtype {descr!r}: flexible type without a size")
        return (4 * n if kind == "U" else n), False
    if isinstance(descr, list):
        total, objects = 0, False
        for field in descr:
            if not (isinstance(field, tuple) and len(field) in (2, 3)):
                raise _Bad("structured dtype field is not a (name, dtype[, shape]) tuple")
            name, sub = field[0], field[1]
            if not isinstance(name, (str, tuple)):
                raise _Bad("structured dtype field name is not a string")
            size, obj = _itemsize(sub, depth + 1)
            if len(field) == 3:
                shape = field[2] if isinstance(field[2], tuple) else (field[2],)
                size *= _count(shape)
            total += size
            objects = objects or obj
        return total, objects
    raise _Unknown(f"dtype description of type {type(descr).__name__}")


def _count(shape: Any) -> int:
    if not (isinstance(shape, tuple) and len(shape) <= MAX_RANK
            and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d for d in shape)):
        raise _Bad(f"shape {str(shape)[:60]} is not a tuple of at most {MAX_RANK} non-negative ints")
    n = 1
    for d in shape:
        n *= d  # Python ints do not overflow; the comparison with the file size bounds the result
    return n


def read_header(f: IO[bytes], size: int) -> tuple[dict[str, Any], int]:
    """The parsed header dict and the offset of the data; raises _Bad or _Unknown."""
    f.seek(0)
    pre = f.read(10)
    if len(pre) < 10 or not pre.startswith(MAGIC):
        raise _Bad("truncated before the header length")
    major, minor = pre[6], pre[7]
    if (major, minor) not in ((1, 0), (2, 0), (3, 0)):
        raise _Unknown(f".npy format version {major}.{minor} not understood")
    if major == 1:
        hlen, start = int.from_bytes(pre[8:10], "little"), 10
    else:
        more = f.read(2)
        if len(more) < 2:
            raise _Bad("truncated before the header length")
        hlen, start = int.from_bytes(pre[8:10] + more, "little"), 12
    if hlen > MAX_HEADER:
        raise _Bad(f"header of {hlen} bytes (numpy refuses more than {MAX_HEADER} by default)")
    if start + hlen > size:
        raise _Bad(f"header of {hlen} bytes runs past the end of the file")
    raw = f.read(hlen)
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        header = ast.literal_eval(text)
    except (UnicodeDecodeError, ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise _Bad(f"header is not a Python literal ({type(exc).__name__})") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise _Bad("header is not a dict with exactly descr, fortran_order and shape")
    if not isinstance(header["fortran_order"], bool):
        raise _Bad("fortran_order is not a bool")
    return header, start + hlen


def scan_npy(rel: str, f: IO[bytes], size: int, counter: Counter) -> FileSafety:
    """Judge one ``.npy`` file read from ``f`` (seekable, ``size`` bytes)."""
    try:
        header, offset = read_header(f, size)
        count = _count(header["shape"])
        itemsize, objects = _itemsize(header["descr"])
    except _Bad as exc:
        return FileSafety(rel, "numpy", SafetyVerdict.UNSAFE, [f"malformed .npy file: {exc}"])
    except _Unknown as exc:
        return FileSafety(rel, "numpy", SafetyVerdict.INCONCLUSIVE, [f".npy file not understood: {exc}"])
    info: dict[str, Any] = {"dtype": str(header["descr"])[:80], "shape": list(header["shape"])}
    if objects:
        f.seek(offset)
        a = analyse_pickle(f, counter=counter)
        verdict = {"safe": SafetyVerdict.SAFE, "unsafe": SafetyVerdict.UNSAFE}.get(a.verdict, SafetyVerdict.INCONCLUSIVE)
        findings = [f"object array: its payload is a pickle: {m}" for m in a.unsafe + a.inconclusive]
        if verdict != SafetyVerdict.SAFE and not findings:
            findings = ["object array: its payload is not a complete pickle"]
        if verdict == SafetyVerdict.SAFE and f.tell() < size:
            verdict, findings = SafetyVerdict.INCONCLUSIVE, ["object array: bytes after the pickle payload"]
        info.update(pickle_globals=a.globals)
        return FileSafety(rel, "numpy", verdict, findings, info)
    need = count * itemsize
    have = size - offset
    if need != have:
        return FileSafety(rel, "numpy", SafetyVerdict.UNSAFE,
                          [f"shape x itemsize is {need} bytes but {have} bytes follow the header"], info)
    info["data"] = "raw array data, not loaded by provscan"
    return FileSafety(rel, "numpy", SafetyVerdict.SAFE, [], info)


def npz_names(raw: IO[bytes], limits: Budgets) -> list[str] | None:
    """Member names when ``raw`` is a zip whose members all end in ``.npy`` (an ``.npz``), else None.

    Only the central directory is read, after its member count is checked against the budget;
    anything unusual returns None and the zip scanner judges the archive.
    """
    try:
        raw.seek(0)
        endrec = zipfile._EndRecData(raw)  # type: ignore[attr-defined]  # stable since Python 2
        if endrec is None or endrec[zipfile._ECD_ENTRIES_TOTAL] > limits.max_zip_members:  # type: ignore[attr-defined]
            return None
        raw.seek(0)
        with zipfile.ZipFile(raw) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, struct.error, ValueError,
            UnicodeDecodeError):
        return None
    if names and all(n.endswith(".npy") for n in names):
        return names
    return None


def scan_npz(rel: str, raw: IO[bytes], size: int, counter: Counter) -> FileSafety:
    """An ``.npz`` (``np.savez``/``np.savez_compressed``): a zip of ``.npy`` members, each judged.

    Member names must be unique relative names; encrypted members are unsafe; the declared
    uncompressed sizes together must fit the ``max_pickle_bytes`` budget (reads of a member stop at
    its declared size, so decompression is bounded by it).
    """
    limits = counter.limits
    try:
        raw.seek(0)
        with zipfile.ZipFile(raw) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            bad = [n for n in names if n.startswith("/") or "\\" in n or ".." in n.split("/")]
            dupes = sorted(n for n, c in collections.Counter(names).items() if c > 1)
            if bad or dupes or any(i.flag_bits & 0x1 for i in infos):
                what = ("absolute or parent-relative names" if bad else "duplicate member names" if dupes
                        else "encrypted members")
                return FileSafety(rel, "npz", SafetyVerdict.UNSAFE, [f"malformed .npz archive: {what}"])
            if sum(i.file_size for i in infos) > limits.max_pickle_bytes:
                return FileSafety(rel, "npz", SafetyVerdict.INCONCLUSIVE, [
                    f"over budget: members larger than {limits.max_pickle_bytes} bytes uncompressed "
                    f"(PROVSCAN_SAFETY_MAX_PICKLE_BYTES)"])
            members = []
            for info in infos:
                with zf.open(info) as member:
                    members.append(scan_npy(f"{rel}:{info.filename}", member, info.file_size, counter))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError, EOFError, struct.error,
            ValueError, NotImplementedError, RuntimeError, KeyError, UnicodeDecodeError) as exc:
        return FileSafety(rel, "npz", SafetyVerdict.UNSAFE, [f"malformed .npz archive ({type(exc).__name__}: {exc})"])
    rank = {SafetyVerdict.SAFE: 0, SafetyVerdict.INCONCLUSIVE: 1, SafetyVerdict.UNSAFE: 2}
    verdict = max((m.verdict for m in members), key=rank.__getitem__)
    findings = [f"{m.path.split(':', 1)[1]}: {x}" for m in members for x in m.findings]
    return FileSafety(rel, "npz", verdict, findings, {"arrays": len(members)})
