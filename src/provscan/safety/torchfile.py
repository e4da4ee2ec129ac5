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

import collections
import re
import struct
import zipfile
import zlib
from typing import IO, Any

from provscan.safety.pickle_scan import Counter, PickleAnalysis, analyse_pickle
from provscan.safety.report import FileSafety, SafetyVerdict

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
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


def scan_torch_zip(rel: str, raw: IO[bytes], size: int, counter: Counter) -> FileSafety:
    """A zip archive read from ``raw`` (seekable, ``size`` bytes): a torch checkpoint or refused."""
    try:
        return _scan_torch_zip(rel, raw, size, counter)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, struct.error, ValueError,
            NotImplementedError, RuntimeError, KeyError, UnicodeDecodeError) as exc:
        # RuntimeError: an encrypted member ("password required"); NotImplementedError: a method
        return FileSafety(rel, "zip", SafetyVerdict.UNSAFE, [f"malformed zip archive ({type(exc).__name__}: {exc})"])


def _scan_torch_zip(rel: str, raw: IO[bytes], size: int, counter: Counter) -> FileSafety:
    unsafe: list[str] = []
    info: dict[str, Any] = {}
    limits = counter.limits
    raw.seek(0)
    endrec = zipfile._EndRecData(raw)  # type: ignore[attr-defined]  # stable since Python 2
    if endrec is None:
        return FileSafety(rel, "zip", SafetyVerdict.UNSAFE, ["malformed zip archive (no end-of-central-directory record)"])
    if endrec[zipfile._ECD_ENTRIES_TOTAL] > limits.max_zip_members:  # type: ignore[attr-defined]
        return FileSafety(rel, "zip", SafetyVerdict.INCONCLUSIVE, [
            f"over budget: more than {limits.max_zip_members} zip members (PROVSCAN_SAFETY_MAX_ZIP_MEMBERS)"])
    raw.seek(0)
    zf = zipfile.ZipFile(raw)
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_zip_members:
            return FileSafety(rel, "zip", SafetyVerdict.INCONCLUSIVE, [
                f"over budget: more than {limits.max_zip_members} zip members (PROVSCAN_SAFETY_MAX_ZIP_MEMBERS)"])
        encrypted = [i.filename for i in infos if i.flag_bits & 0x1]
        if encrypted:
            return FileSafety(rel, "zip", SafetyVerdict.UNSAFE, [
                f"encrypted members (torch writes none; their content cannot be checked): {', '.join(encrypted[:3])}"])
        names = [i.filename for i in infos]
        dupes = sorted(n for n, c in collections.Counter(names).items() if c > 1)
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
        byteorder = "little"
        if "byteorder" in inner:
            if zf.getinfo(prefix + "byteorder").file_size > 16:
                return _result(rel, "torch-zip", None, ["byteorder member larger than a byte order"], [], info)
            byteorder = zf.read(prefix + "byteorder").decode("ascii", "replace")
        if byteorder != "little":
            unsafe.append(f"byteorder {byteorder!r} (only little-endian checkpoints are accepted)")
        info["archive_folder"] = prefix.rstrip("/")
        data_pkl = zf.getinfo(prefix + "data.pkl")
        if data_pkl.file_size > limits.max_pickle_bytes:
            return _result(rel, "torch-zip", None, [], [
                f"over budget: data.pkl larger than {limits.max_pickle_bytes} bytes (PROVSCAN_SAFETY_MAX_PICKLE_BYTES)"], info)
        pkl = zf.read(data_pkl)
        a = analyse_pickle(pkl, torch_mode=True, counter=counter)
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


def scan_legacy_or_pickle(rel: str, f: IO[bytes], size: int, counter: Counter,
                          first: PickleAnalysis | None = None) -> FileSafety:
    """A file starting with a pickle: torch's legacy format, or a plain pickle.

    ``first`` is the analysis of the first stream when the caller already made it (then ``f`` is
    positioned right after it).
    """
    if first is None:
        f.seek(0)
        first = analyse_pickle(f, counter=counter)
    if first.verdict == "safe" and type(first.result) is int and first.result == LEGACY_MAGIC:
        return _scan_legacy(rel, f, size, counter)
    if first.verdict != "safe":
        return _result(rel, "pickle", first, [], [], {})
    # A plain pickle: every further stream must be a pickle too, and safe.
    merged = first
    streams = 1
    while f.tell() < size:
        nxt = analyse_pickle(f, counter=counter)
        merged.merge(nxt, prefix=f"pickle #{streams + 1}: ")
        if nxt.verdict != "safe":
            break
        streams += 1
    return _result(rel, "pickle", merged, [], [], {"pickle_streams": streams})


def _scan_legacy(rel: str, f: Any, size: int, counter: Counter) -> FileSafety:
    proto = analyse_pickle(f, counter=counter)
    if proto.verdict != "safe" or type(proto.result) is not int or proto.result != LEGACY_PROTOCOL:
        return _result(rel, "torch-legacy", proto, [], ["legacy protocol version not understood"], {})
    sys_info = analyse_pickle(f, counter=counter)
    if sys_info.verdict != "safe":
        return _result(rel, "torch-legacy", sys_info, [], [], {})
    main = analyse_pickle(f, torch_mode=True, counter=counter)
    if main.verdict != "safe":
        return _result(rel, "torch-legacy", main, [], [], {})
    keys = analyse_pickle(f, counter=counter)
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
