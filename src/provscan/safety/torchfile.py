"""torch checkpoints: the zip format (torch ≥ 1.6) and the legacy concatenated-pickle format.

Zip archives are checked the way torch's reader would see them, and more strictly: the local
headers must tile the file from byte 0 up to the central directory (no prepended, hidden or
overlapping bytes), every central-directory name must match its local header and appear once,
every member must be stored (uncompressed) with a correct CRC-32, every member must be one torch
writes (``data.pkl``, ``data/<key>``, ``byteorder``, ``version``...) under one common folder, exactly
one pickle (``data.pkl``), and every ``data/<key>`` must be a storage the pickle references with
the byte size its element type and element count imply.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

from provscan.safety.pickle_scan import PickleAnalysis, analyse_pickle
from provscan.safety.report import FileSafety, SafetyVerdict

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
MAX_PICKLE_BYTES = 1 << 30
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_KNOWN_META = {"byteorder", "version", ".data/version", ".format_version", ".storage_alignment",
               ".data/serialization_id"}
_DATA = re.compile(r"^data/([A-Za-z0-9_.-]+)$")


def _result(rel: str, fmt: str, a: PickleAnalysis | None, unsafe: list[str], inconclusive: list[str],
            info: dict[str, Any]) -> FileSafety:
    if a is not None:
        unsafe = unsafe + a.unsafe
        inconclusive = inconclusive + a.inconclusive
        info.update(globals=a.globals, pickle_protocol=a.protocol)
    verdict = SafetyVerdict.UNSAFE if unsafe else SafetyVerdict.INCONCLUSIVE if inconclusive else SafetyVerdict.SAFE
    if a is not None and verdict == SafetyVerdict.SAFE:
        info.update(tensors_summary(a))
    return FileSafety(rel, fmt, verdict, unsafe + inconclusive, info)


def tensors_summary(a: PickleAnalysis) -> dict[str, Any]:
    dtypes: dict[str, int] = {}
    for t in a.tensors:
        dtypes[t.dtype] = dtypes.get(t.dtype, 0) + 1
    return {"tensors": len(a.tensors), "parameters": sum(t.numel for t in a.tensors),
            "dtypes": dtypes, "bytes": sum(s.numel * s.element_size for s in a.storages.values())}


def scan_torch_zip(rel: str, path: Path) -> FileSafety:
    unsafe: list[str] = []
    info: dict[str, Any] = {}
    size = path.stat().st_size
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return FileSafety(rel, "zip", SafetyVerdict.UNSAFE, [f"malformed zip archive ({exc})"])
    with zf, open(path, "rb") as raw:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            unsafe.append(f"duplicate member names: {', '.join(dupes[:3])}")
        unsafe += _check_layout(raw, infos, zf, size)
        prefixes = {n.split("/", 1)[0] for n in names}
        if len(prefixes) != 1 or any("/" not in n for n in names):
            unsafe.append(f"members are not under one folder ({', '.join(sorted(prefixes)[:4])})")
            return _result(rel, "torch-zip", None, unsafe, [], info)
        prefix = prefixes.pop() + "/"
        inner = [n[len(prefix):] for n in names]
        if "data.pkl" not in inner:
            pickles = [n for n in inner if n.endswith(".pkl")]
            msg = "zip archive without data.pkl: not a torch checkpoint"
            if pickles or any(n.startswith("code/") for n in inner):
                return _result(rel, "zip", None, [msg + f" (TorchScript or other pickles: {pickles[:3]})"], [], info)
            return _result(rel, "zip", None, [], [msg], info)
        for n in inner:
            if n != "data.pkl" and (n.endswith(".pkl") or "pkl" in n.rsplit("/", 1)[-1]):
                unsafe.append(f"a second pickle in the archive: {prefix}{n}")
            elif n not in _KNOWN_META and n != "data.pkl" and not _DATA.match(n):
                unsafe.append(f"unexpected member {prefix}{n}")
        if unsafe:
            return _result(rel, "torch-zip", None, unsafe, [], info)
        crc_err = _check_crcs(zf)
        if crc_err:
            return _result(rel, "torch-zip", None, [crc_err], [], info)
        byteorder = zf.read(prefix + "byteorder").decode("ascii", "replace") if "byteorder" in inner else "little"
        if byteorder != "little":
            unsafe.append(f"byteorder {byteorder!r} (only little-endian checkpoints are accepted)")
        info["archive_folder"] = prefix.rstrip("/")
        data_pkl = zf.getinfo(prefix + "data.pkl")
        if data_pkl.file_size > MAX_PICKLE_BYTES:
            return _result(rel, "torch-zip", None, [], ["data.pkl larger than the analysis allows"], info)
        pkl = zf.read(data_pkl)
        a = analyse_pickle(pkl, torch_mode=True)
        if a.end != len(pkl) and not a.inconclusive and not a.unsafe:
            unsafe.append(f"{len(pkl) - a.end} bytes after the pickle's STOP in data.pkl")
        if a.verdict == "safe":
            sizes = {m.group(1): zf.getinfo(prefix + n).file_size
                     for n in inner if (m := _DATA.match(n))}
            unsafe += _check_storages(a, sizes)
    return _result(rel, "torch-zip", a, unsafe, [], info)


def _check_layout(raw: Any, infos: list[zipfile.ZipInfo], zf: zipfile.ZipFile, size: int) -> list[str]:
    """The members' local records must tile [0, start of central directory) exactly."""
    problems = []
    pos = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset != pos:
            kind = "hidden bytes before" if info.header_offset > pos else "overlapping"
            problems.append(f"{kind} member {info.filename} (offset {info.header_offset}, expected {pos})")
            return problems
        raw.seek(pos)
        head = raw.read(_LOCAL.size)
        if len(head) < _LOCAL.size:
            return [f"truncated local header of {info.filename}"]
        sig, _ver, flags, method, _t, _d, _crc, _cs, _us, nlen, xlen = _LOCAL.unpack(head)
        name = raw.read(nlen)
        if sig != b"PK\x03\x04":
            return [f"bad local header signature for {info.filename}"]
        if name.decode("utf-8" if flags & 0x800 else "cp437", "replace") != info.filename:
            problems.append(f"local header name {name!r} differs from the directory's {info.filename!r}")
        bad_extra = _check_extra(raw.read(xlen)) or _check_extra(info.extra)
        if bad_extra:
            problems.append(f"{info.filename}: {bad_extra}")
        if method != info.compress_type:
            problems.append(f"local header of {info.filename} disagrees on the compression method")
        pos = info.header_offset + _LOCAL.size + nlen + xlen + info.compress_size
        if flags & 0x8:  # data descriptor after the data
            raw.seek(pos)
            sig4 = raw.read(4)
            zip64 = info.file_size >= 0xFFFFFFFF or info.compress_size >= 0xFFFFFFFF
            pos += (4 if sig4 == b"PK\x07\x08" else 0) + (20 if zip64 else 12)
    if pos != zf.start_dir:
        problems.append(f"{zf.start_dir - pos} hidden bytes between the last member and the central directory")
    endrec = zipfile._EndRecData(raw)  # type: ignore[attr-defined]  # stable since Python 2
    if endrec is None:
        return problems + ["no end-of-central-directory record"]
    eocd = endrec[zipfile._ECD_LOCATION]  # type: ignore[attr-defined]
    cd_size = endrec[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    parsed = sum(46 + len(i.orig_filename.encode("utf-8" if i.flag_bits & 0x800 else "cp437"))
                 + len(i.extra) + len(i.comment) for i in infos)
    if parsed != cd_size:
        problems.append("the central directory holds bytes that are not member entries")
    if eocd not in (zf.start_dir + cd_size, zf.start_dir + cd_size + 76):  # 76: zip64 record + locator
        problems.append("bytes hidden after the central directory")
    if zf.comment:
        problems.append("the archive has a comment (torch writes none)")
    tail = size - (eocd + 22 + len(zf.comment))
    if tail != 0:
        problems.append(f"{tail} bytes after the end of the archive")
    return problems


def _check_extra(extra: bytes) -> str | None:
    """Extra fields may only be zip64 sizes or torch's alignment padding ('FB' + 'Z' bytes)."""
    pos = 0
    while pos < len(extra):
        if pos + 4 > len(extra):
            return "truncated extra field"
        hid, n = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + n]
        if len(body) != n:
            return "truncated extra field"
        if hid == 0x4246:  # b"FB": torch's padding to align member data
            if body.strip(b"Z"):
                return "data hidden in the alignment padding"
        elif hid != 0x0001:  # zip64 extended sizes
            return f"unexpected extra field 0x{hid:04x} (hidden bytes)"
        pos += 4 + n
    return None


def _check_crcs(zf: zipfile.ZipFile) -> str | None:
    for info in zf.infolist():
        if info.compress_type != zipfile.ZIP_STORED:
            return f"member {info.filename} is compressed (torch stores members uncompressed)"
        crc = 0
        with zf.open(info) as f:
            f._expected_crc = None  # type: ignore[attr-defined]  # compute it ourselves, streamed
            while chunk := f.read(1 << 22):
                crc = zlib.crc32(chunk, crc)
        if crc != info.CRC:
            return f"CRC-32 mismatch in member {info.filename}"
    return None


def _check_storages(a: PickleAnalysis, sizes: dict[str, int]) -> list[str]:
    problems = []
    for key, st in a.storages.items():
        if key not in sizes:
            problems.append(f"storage {key} referenced by data.pkl has no data member")
        elif sizes[key] != st.numel * st.element_size:
            problems.append(f"storage {key}: {sizes[key]} bytes, expected {st.numel} x {st.element_size}")
    extra = sorted(set(sizes) - set(a.storages))
    if extra:
        problems.append(f"data members not referenced by data.pkl (hidden data): {', '.join(extra[:3])}")
    return problems


def scan_legacy_or_pickle(rel: str, path: Path) -> FileSafety:
    """A file starting with a pickle: torch's legacy format, or a plain pickle."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        first = analyse_pickle(f)
        if first.verdict == "safe" and first.result == LEGACY_MAGIC:
            return _scan_legacy(rel, f, size, first)
        if first.verdict != "safe":
            return _result(rel, "pickle", first, [], [], {})
        # A plain pickle: every further stream must be a pickle too, and safe.
        merged = first
        streams = 1
        while f.tell() < size:
            nxt = analyse_pickle(f)
            merged.merge(nxt, prefix=f"pickle #{streams + 1}: ")
            if nxt.verdict != "safe":
                break
            streams += 1
        return _result(rel, "pickle", merged, [], [], {"pickle_streams": streams})


def _scan_legacy(rel: str, f: Any, size: int, first: PickleAnalysis) -> FileSafety:
    proto = analyse_pickle(f)
    if proto.verdict != "safe" or proto.result != LEGACY_PROTOCOL:
        return _result(rel, "torch-legacy", proto, [], ["legacy protocol version not understood"], {})
    sys_info = analyse_pickle(f)
    if sys_info.verdict != "safe":
        return _result(rel, "torch-legacy", sys_info, [], [], {})
    main = analyse_pickle(f, torch_mode=True)
    if main.verdict != "safe":
        return _result(rel, "torch-legacy", main, [], [], {})
    keys = analyse_pickle(f)
    if keys.verdict != "safe" or not isinstance(keys.result, list) or not all(isinstance(k, str) for k in keys.result):
        return _result(rel, "torch-legacy", keys, [], ["storage key list not understood"], {})
    unsafe = []
    if sorted(keys.result) != sorted(main.storages) or len(set(keys.result)) != len(keys.result):
        unsafe.append("storage key list does not match the storages the pickle references")
    else:
        for key in keys.result:
            st = main.storages[key]
            head = f.read(8)
            if len(head) < 8:
                unsafe.append(f"storage {key} is truncated")
                break
            (numel,) = struct.unpack("<q", head)
            if numel != st.numel:
                unsafe.append(f"storage {key} has {numel} elements on disk, {st.numel} in the pickle")
                break
            f.seek(numel * st.element_size, 1)
        if not unsafe and f.tell() != size:
            unsafe.append(f"{size - f.tell()} bytes after the last storage (hidden data or truncation)")
    return _result(rel, "torch-legacy", main, unsafe, [], {})
