"""Benign data formats: a file is "data, not loaded" only if its bytes parse as one of them.

Each check reads the stream from the start and answers True only when the whole content parses
(UTF-8 text, a JSON document within the depth and size budgets, a SentencePiece model protobuf).
None of them executes anything; all are linear in the file size and bounded by the budgets.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from typing import IO, Any

from provscan.safety.budgets import Budgets
from provscan.safety.safetensors_check import json_values_bound

_TEXT_CHUNK = 1 << 20


class DataVerdict:
    """Whether content parses as a benign format; ``reason`` says why not."""

    def __init__(self, ok: bool, reason: str = "", over_budget: bool = False, value: Any = None) -> None:
        self.ok, self.reason, self.over_budget, self.value = ok, reason, over_budget, value


def is_text(f: IO[bytes], size: int, limits: Budgets) -> DataVerdict:
    """UTF-8 without NUL bytes (streamed)."""
    f.seek(0)
    dec = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := f.read(_TEXT_CHUNK):
            if b"\x00" in chunk:
                return DataVerdict(False, "binary content (NUL bytes)")
            dec.decode(chunk)
        dec.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return DataVerdict(False, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
    return DataVerdict(True)


def load_json(f: IO[bytes], size: int, limits: Budgets) -> DataVerdict:
    """A JSON document within the byte, value-count and depth budgets (value in ``.value``)."""
    if size > limits.max_json_bytes:
        return DataVerdict(False, f"over budget: JSON larger than {limits.max_json_bytes} bytes "
                                  f"(PROVSCAN_SAFETY_MAX_JSON_BYTES)", over_budget=True)
    f.seek(0)
    raw = f.read(size)
    if json_values_bound(raw) > limits.max_json_values:
        return DataVerdict(False, f"over budget: more than {limits.max_json_values} JSON values "
                                  f"(PROVSCAN_SAFETY_MAX_JSON_VALUES)", over_budget=True)
    try:
        value = json.loads(raw.decode("utf-8"))
    except RecursionError:
        return DataVerdict(False, "over budget: JSON nested deeper than the parser allows", over_budget=True)
    except (UnicodeDecodeError, ValueError) as exc:
        return DataVerdict(False, f"not valid JSON ({str(exc)[:120]})")
    depth = json_depth(value, limits.max_json_depth)
    if depth > limits.max_json_depth:
        return DataVerdict(False, f"over budget: JSON nested more than {limits.max_json_depth} levels "
                                  f"(PROVSCAN_SAFETY_MAX_JSON_DEPTH)", over_budget=True)
    return DataVerdict(True, value=value)


def json_depth(value: Any, stop_after: int) -> int:
    """Nesting depth of a parsed JSON value (iterative; stops counting past ``stop_after``)."""
    depth = 0
    level = [value]
    while level and depth <= stop_after:
        nxt: list[Any] = []
        for v in level:
            if isinstance(v, dict):
                nxt.extend(v.values())
            elif isinstance(v, list):
                nxt.extend(v)
        depth += 1
        level = [v for v in nxt if isinstance(v, (dict, list))]
    return depth


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def protobuf_fields(data: bytes) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each top-level field; ValueError if malformed."""
    fields = []
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ValueError("field number 0")
        start = pos
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            n, pos = _varint(data, pos)
            start = pos
            pos += n
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire} (groups are not used by these formats)")
        if pos > len(data):
            raise ValueError("field runs past the end")
        fields.append((number, wire, start, pos))
    return fields


#: SentencePiece ModelProto: pieces, trainer_spec, normalizer_spec, self_test_data, denormalizer_spec
_SENTENCEPIECE_FIELDS = {1, 2, 3, 4, 5}
#: SentencePiece piece: piece (string), score (float), type (enum)
_PIECE_FIELDS = {1: 2, 2: 5, 3: 0}


def is_sentencepiece(f: IO[bytes], size: int, limits: Budgets) -> DataVerdict:
    """A SentencePiece ``ModelProto``: only its message fields, at least one well-formed piece."""
    if size > limits.max_protobuf_bytes:
        return DataVerdict(False, f"over budget: protobuf larger than {limits.max_protobuf_bytes} bytes "
                                  f"(PROVSCAN_SAFETY_MAX_PROTOBUF_BYTES)", over_budget=True)
    f.seek(0)
    data = f.read(size)
    try:
        top = protobuf_fields(data)
        pieces = 0
        for number, wire, start, end in top:
            if number not in _SENTENCEPIECE_FIELDS or wire != 2:
                return DataVerdict(False, f"protobuf field {number} is not part of a SentencePiece model")
            inner = protobuf_fields(data[start:end])
            if number == 1:
                pieces += 1
                for n, w, _s, _e in inner:
                    if _PIECE_FIELDS.get(n) != w:
                        return DataVerdict(False, "a SentencePiece piece with unexpected fields")
    except ValueError as exc:
        return DataVerdict(False, f"not a protobuf message ({exc})")
    if not pieces:
        return DataVerdict(False, "a protobuf message without SentencePiece pieces")
    return DataVerdict(True)


def is_onnx(head: bytes) -> bool:
    """ONNX ``ModelProto`` starts with ``ir_version`` (field 1, varint) in every exporter we know."""
    return len(head) >= 2 and head[0] == 0x08 and head[1] < 0x80 and 0 < head[1] < 32


_PNG = b"\x89PNG\r\n\x1a\n"


def is_image(f: IO[bytes], size: int, limits: Budgets) -> DataVerdict:
    """A PNG, JPEG, GIF or WebP image by its signature and framing (nothing decoded).

    PNG: every chunk's length fits and the stream ends with ``IEND`` (nothing after it); JPEG:
    starts with SOI and ends with EOI; GIF: ``GIF87a``/``GIF89a`` and the ``;`` trailer; WebP:
    ``RIFF`` whose declared size is the file's. Pixel data is never decoded.
    """
    f.seek(0)
    head = f.read(16)
    if head.startswith(_PNG):
        pos, chunks = len(_PNG), 0
        while pos < size:
            f.seek(pos)
            hdr = f.read(8)
            if len(hdr) < 8:
                return DataVerdict(False, "PNG chunk header runs past the end")
            length, ctype = int.from_bytes(hdr[:4], "big"), hdr[4:8]
            pos += 12 + length
            chunks += 1
            if pos > size:
                return DataVerdict(False, "PNG chunk runs past the end")
            if ctype == b"IEND":
                return DataVerdict(pos == size, "" if pos == size else "data after the PNG IEND chunk")
            if chunks > limits.max_json_values:
                return DataVerdict(False, "over budget: too many PNG chunks", over_budget=True)
        return DataVerdict(False, "PNG without an IEND chunk")
    if head.startswith(b"\xff\xd8\xff"):
        f.seek(size - 2)
        return DataVerdict(f.read(2) == b"\xff\xd9", "JPEG without its end marker")
    if head.startswith((b"GIF87a", b"GIF89a")):
        f.seek(size - 1)
        return DataVerdict(f.read(1) == b";", "GIF without its trailer")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        declared = int.from_bytes(head[4:8], "little") + 8
        return DataVerdict(declared in (size, size - 1), "WebP size field does not match the file")
    return DataVerdict(False, "no PNG, JPEG, GIF or WebP signature")


DataCheck = Callable[[IO[bytes], int, Budgets], DataVerdict]

SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle"


def is_sigstore_bundle(f: IO[bytes], size: int, limits: Budgets) -> DataVerdict:
    """A Sigstore bundle (model-signing's ``model.sig``): JSON whose ``mediaType`` says so."""
    check = load_json(f, size, limits)
    if not check.ok:
        return check
    media = check.value.get("mediaType") if isinstance(check.value, dict) else None
    if not isinstance(media, str) or not media.startswith(SIGSTORE_BUNDLE):
        return DataVerdict(False, "JSON, but not a Sigstore bundle (no bundle mediaType)")
    return DataVerdict(True, value=check.value)


#: benign formats, tried in this order for files whose name claims none of them
DATA_FORMATS: dict[str, DataCheck] = {"json": load_json, "sentencepiece": is_sentencepiece, "image": is_image,
                                      "text": is_text, "sigstore-bundle": is_sigstore_bundle}
