"""Static analysis of a pickle stream: nothing is unpickled, nothing is imported.

The stream is decoded opcode by opcode with the argument rules of CPython's unpickler
(``pickle._Unpickler``: ``int(x, 0)`` for text integers, quoted ``STRING``, signed ``LONG4``...),
and the unpickler's stack and memo are simulated with inert values: constants, tuples, lists,
globals (:class:`GlobalRef`), calls (:class:`Call`) and persistent ids (:class:`PersistentId`).
That lets the analysis resolve ``STACK_GLOBAL`` names that come through the memo, see what each
``REDUCE`` calls and with which arguments, and collect the tensors a torch checkpoint would
rebuild.

Default-deny: a global outside :mod:`provscan.safety.allowlist`, a call of anything but an
allowlisted callable, a global name computed at load time, extension-registry opcodes and
``INST``/``OBJ`` make the stream **unsafe**; an opcode or structure the analysis does not model,
or a stream over a work budget (:mod:`provscan.safety.budgets`), makes it **inconclusive**.

Where the real unpickler would fail (an unknown opcode, a stack underflow, calling ``None``...)
the analysis stops too and records where; :attr:`PickleAnalysis.is_pickle` then says whether the
bytes read so far already did something a loader would act on. That is how any file, whatever
its name, is tested for being a pickle (protocol 0 and 1 pickles are plain text).

Work is linear in the stream: each opcode costs O(1) (plus the bytes it reads), structure
descriptions in messages are bounded, and ``bytes`` constants that are themselves pickles are
analysed to a bounded depth under the same budget.
"""

from __future__ import annotations

import codecs
import io
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from provscan.safety.allowlist import STORAGE_TYPES, classify_global
from provscan.safety.budgets import Budgets, budgets


@dataclass(frozen=True)
class GlobalRef:
    module: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True, eq=False)
class Call:
    func: GlobalRef
    args: Any


@dataclass(frozen=True, eq=False)
class PersistentId:
    value: Any


class Opaque:
    """A value the analysis does not track (a dict, a set...)."""


class ListValue(list):
    """A list built by the pickle (tracked: torch's legacy format pickles the storage keys)."""


_MARK = object()
_OPAQUE = Opaque()


@dataclass
class Tensor:
    storage_key: str
    dtype: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def numel(self) -> int:
        n = 1
        for s in self.size:
            n *= s
        return n

    def span(self) -> int:
        """Number of storage elements the view reaches (0 for an empty tensor)."""
        if self.numel == 0:
            return 0
        return self.offset + 1 + sum((s - 1) * st for s, st in zip(self.size, self.stride))


@dataclass
class Storage:
    key: str
    storage_type: str
    dtype: str
    element_size: int
    location: str
    numel: int


@dataclass
class PickleAnalysis:
    unsafe: list[str] = field(default_factory=list)
    inconclusive: list[str] = field(default_factory=list)
    globals: list[str] = field(default_factory=list)
    storages: dict[str, Storage] = field(default_factory=dict)
    tensors: list[Tensor] = field(default_factory=list)
    protocol: int = 0
    opcodes: int = 0
    result: Any = None
    end: int = 0
    #: the stream reached its STOP opcode
    complete: bool = False
    #: opcodes that would have imported, called or set state (a loader acts on them)
    effects: int = 0
    #: a work budget ran out (the verdict is inconclusive, whatever else was seen)
    over_budget: bool = False
    #: why the decoding stopped before STOP (the real unpickler fails there too)
    broken: str = ""
    #: the analysis stopped at a structure it does not model (the unpickler would go on)
    rejected: bool = False

    @property
    def verdict(self) -> str:
        if self.unsafe:
            return "unsafe"
        if self.inconclusive or not self.complete:
            return "inconclusive"
        return "safe"

    @property
    def is_pickle(self) -> bool:
        """The bytes are a pickle as far as a loader is concerned (complete, or acted on)."""
        return self.complete or self.effects > 0 or bool(self.unsafe) or self.over_budget or self.rejected

    def merge(self, other: PickleAnalysis, prefix: str = "") -> None:
        self.unsafe += [prefix + m for m in other.unsafe]
        self.inconclusive += [prefix + m for m in other.inconclusive]
        self.globals += [g for g in other.globals if g not in self.globals]
        self.over_budget = self.over_budget or other.over_budget


class Counter:
    """Work done so far on one file (shared by its streams and nested pickles)."""

    def __init__(self, limits: Budgets | None = None) -> None:
        self.limits = limits or budgets()
        self.opcodes = 0
        self.constant_bytes = 0

    def constant(self, n: int) -> None:
        self.constant_bytes += n
        if n > self.limits.max_constant_bytes or self.constant_bytes > self.limits.max_constant_bytes:
            raise _OverBudget(f"constants larger than the analysis allows ({self.limits.max_constant_bytes} "
                              f"bytes; PROVSCAN_SAFETY_MAX_CONSTANT_BYTES)")


class _Reject(Exception):
    """Stops the simulation at a structure that cannot be modelled (inconclusive)."""


class _Stop(Exception):
    """Stops the simulation right after an unsafe finding (nothing more to learn)."""


class _Broken(Exception):
    """The real unpickler fails here as well: the bytes stop being a pickle."""


class _OverBudget(Exception):
    """A work budget ran out."""


# --- reading the stream (the argument rules of CPython's unpickler) -----------------------------
class _Source:
    """Buffered reads over a seekable binary stream that never read past its end or the budget."""

    CHUNK = 1 << 20

    def __init__(self, f: IO[bytes], counter: Counter) -> None:
        self.f = f
        self.counter = counter
        start = f.tell()
        try:
            self.size = os.fstat(f.fileno()).st_size
        except (AttributeError, OSError, io.UnsupportedOperation):
            self.size = f.seek(0, 2)
            f.seek(start)
        self.base = start
        self.buf = b""
        self.pos = 0

    def tell(self) -> int:
        return self.base + self.pos

    def remaining(self) -> int:
        return max(0, self.size - self.tell())

    def _fill(self, need: int) -> None:
        if len(self.buf) - self.pos >= need:
            return
        rest = self.buf[self.pos :]
        self.f.seek(self.base + len(self.buf))
        more = self.f.read(max(need - len(rest), self.CHUNK))
        self.base += self.pos
        self.buf, self.pos = rest + more, 0

    def read(self, n: int, constant: bool = True) -> bytes:
        if n < 0:
            raise _Broken("negative length")
        if n > self.remaining():
            raise _Broken(f"truncated: {n} bytes announced, {self.remaining()} left")
        if constant:
            self.counter.constant(n)
        self._fill(n)
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int | None:
        if self.pos >= len(self.buf):
            self._fill(1)
            if self.pos >= len(self.buf):
                return None
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def line(self) -> bytes:
        """One line without its last byte (``readline()[:-1]``, as the unpickler does)."""
        limit = self.counter.limits.max_constant_bytes
        while True:
            nl = self.buf.find(b"\n", self.pos)
            if nl >= 0:
                out = self.buf[self.pos : nl]
                self.pos = nl + 1
                self.counter.constant(len(out))
                return out
            have = len(self.buf) - self.pos
            if have > limit:
                raise _OverBudget(f"a text line longer than {limit} bytes (PROVSCAN_SAFETY_MAX_CONSTANT_BYTES)")
            if self.tell() + have >= self.size:
                out = self.buf[self.pos :]
                self.pos = len(self.buf)
                if not out:
                    raise _Broken("pickle exhausted before seeing STOP")
                self.counter.constant(len(out))
                return out[:-1]
            self._fill(have + self.CHUNK)


def _u(fmt: str) -> Callable[[_Source], Any]:
    s = struct.Struct(fmt)
    return lambda src: s.unpack(src.read(s.size, constant=False))[0]


def _counted(fmt: str, decode: Callable[[bytes], Any] | None = None, signed_check: bool = False
             ) -> Callable[[_Source], Any]:
    size = _u(fmt)

    def read(src: _Source) -> Any:
        n = size(src)
        if signed_check and n < 0:
            raise _Broken("negative byte count")
        data = src.read(n)
        return decode(data) if decode else data
    return read


def _text_int(src: _Source) -> Any:
    data = src.line()
    if data == b"00":
        return False
    if data == b"01":
        return True
    return int(data, 0)


def _text_long(src: _Source) -> int:
    data = src.line()
    if data.endswith(b"L"):
        data = data[:-1]
    return int(data, 0)


def _text_string(src: _Source) -> str:
    data = src.line()
    if not (len(data) >= 2 and data[0] == data[-1] and data[:1] in (b"'", b'"')):
        raise _Broken("the STRING opcode argument must be quoted")
    return codecs.escape_decode(data[1:-1])[0].decode("latin-1")


def _global_pair(src: _Source) -> str:
    return src.line().decode("utf-8") + " " + src.line().decode("utf-8")


def _long(data: bytes) -> int:
    return int.from_bytes(data, "little", signed=True)


_LATIN1: Callable[[bytes], str] = lambda b: b.decode("latin-1")  # noqa: E731
_UTF8: Callable[[bytes], str] = lambda b: str(b, "utf-8", "surrogatepass")  # noqa: E731

# opcode byte -> (name, argument reader or None); mirrors pickle._Unpickler.dispatch
_OPS: dict[int, tuple[str, Callable[[_Source], Any] | None]] = {
    0x80: ("PROTO", _u("<B")), 0x95: ("FRAME", _u("<Q")),
    ord("P"): ("PERSID", lambda s: s.line().decode("ascii")), ord("Q"): ("BINPERSID", None),
    ord("N"): ("NONE", None), 0x88: ("NEWTRUE", None), 0x89: ("NEWFALSE", None),
    ord("I"): ("INT", _text_int), ord("J"): ("BININT", _u("<i")), ord("K"): ("BININT1", _u("<B")),
    ord("M"): ("BININT2", _u("<H")), ord("L"): ("LONG", _text_long),
    0x8A: ("LONG1", _counted("<B", _long)), 0x8B: ("LONG4", _counted("<i", _long, signed_check=True)),
    ord("F"): ("FLOAT", lambda s: float(s.line())), ord("G"): ("BINFLOAT", _u(">d")),
    ord("S"): ("STRING", _text_string),
    ord("T"): ("BINSTRING", _counted("<i", _LATIN1, signed_check=True)),
    ord("U"): ("SHORT_BINSTRING", _counted("<B", _LATIN1)),
    ord("B"): ("BINBYTES", _counted("<I")), ord("C"): ("SHORT_BINBYTES", _counted("<B")),
    0x8E: ("BINBYTES8", _counted("<Q")), 0x96: ("BYTEARRAY8", _counted("<Q")),
    0x97: ("NEXT_BUFFER", None), 0x98: ("READONLY_BUFFER", None),
    ord("V"): ("UNICODE", lambda s: s.line().decode("raw-unicode-escape")),
    ord("X"): ("BINUNICODE", _counted("<I", _UTF8)), 0x8C: ("SHORT_BINUNICODE", _counted("<B", _UTF8)),
    0x8D: ("BINUNICODE8", _counted("<Q", _UTF8)),
    ord(")"): ("EMPTY_TUPLE", None), ord("t"): ("TUPLE", None), 0x85: ("TUPLE1", None),
    0x86: ("TUPLE2", None), 0x87: ("TUPLE3", None), ord("]"): ("EMPTY_LIST", None),
    ord("}"): ("EMPTY_DICT", None), 0x8F: ("EMPTY_SET", None), 0x91: ("FROZENSET", None),
    ord("l"): ("LIST", None), ord("d"): ("DICT", None), ord("i"): ("INST", _global_pair),
    ord("o"): ("OBJ", None), 0x81: ("NEWOBJ", None), 0x92: ("NEWOBJ_EX", None),
    ord("c"): ("GLOBAL", _global_pair), 0x93: ("STACK_GLOBAL", None),
    0x82: ("EXT1", _u("<B")), 0x83: ("EXT2", _u("<H")), 0x84: ("EXT4", _u("<i")),
    ord("R"): ("REDUCE", None), ord("0"): ("POP", None), ord("1"): ("POP_MARK", None),
    ord("2"): ("DUP", None), ord("g"): ("GET", lambda s: int(s.line())), ord("h"): ("BINGET", _u("<B")),
    ord("j"): ("LONG_BINGET", _u("<I")), ord("p"): ("PUT", lambda s: int(s.line())),
    ord("q"): ("BINPUT", _u("<B")), ord("r"): ("LONG_BINPUT", _u("<I")), 0x94: ("MEMOIZE", None),
    ord("a"): ("APPEND", None), ord("e"): ("APPENDS", None), ord("s"): ("SETITEM", None),
    ord("u"): ("SETITEMS", None), 0x90: ("ADDITEMS", None), ord("b"): ("BUILD", None),
    ord("("): ("MARK", None), ord("."): ("STOP", None),
}

_CONST_OPS = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
              "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
              "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
_BYTES_OPS = {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
_PY2_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING"}  # bytes under encoding="bytes"
_FIXED = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_TUPLE_N = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_EXT = {"EXT1", "EXT2", "EXT4"}
_CONSTANT_TYPES = (type(None), bool, int, float, str, bytes, tuple)


def analyse_pickle(stream: IO[bytes] | bytes, torch_mode: bool = False, depth: int = 0,
                   counter: Counter | None = None) -> PickleAnalysis:
    """Analyse one pickle stream from the current position up to and including its STOP.

    ``torch_mode`` also checks the persistent ids and tensor rebuilds of a torch checkpoint.
    After the call the stream is positioned right after the last opcode read (``analysis.end``).
    ``counter`` carries the budgets and the work already done on the same file.
    """
    f: IO[bytes] = io.BytesIO(stream) if isinstance(stream, (bytes, bytearray)) else stream
    counter = counter or Counter()
    out = PickleAnalysis()
    src = _Source(f, counter)
    sim = _Simulator(out, torch_mode, depth, counter)
    table = sim.table
    limit = counter.limits.max_opcodes
    first = counter.opcodes
    try:
        while True:
            pos = src.pos
            if pos < len(src.buf):
                code: int | None = src.buf[pos]
                src.pos = pos + 1
            else:
                code = src.byte()
                if code is None:
                    raise _Broken("pickle exhausted before seeing STOP")
            entry = table.get(code)  # type: ignore[arg-type]
            if entry is None:
                raise _Broken(f"opcode {bytes([code])!r} unknown at byte {src.tell() - 1}")  # type: ignore[list-item]
            counter.opcodes += 1
            if counter.opcodes > limit:
                raise _OverBudget(f"more than {limit} opcodes (PROVSCAN_SAFETY_MAX_OPCODES)")
            reader, handler = entry
            handler(reader(src) if reader is not None else None)
            if code == _STOP_CODE:
                out.complete = True
                break
    except _Stop:
        pass
    except _OverBudget as exc:
        out.over_budget = True
        out.inconclusive.append(f"over budget: {exc}")
    except _Reject as exc:
        out.rejected = True
        out.inconclusive.append(str(exc))
    except _Broken as exc:
        out.broken = str(exc)
    except (ValueError, struct.error, UnicodeDecodeError, OverflowError) as exc:
        out.broken = f"{type(exc).__name__}: {str(exc)[:200]}"
    except (RecursionError, MemoryError) as exc:
        out.over_budget = True
        out.inconclusive.append(f"over budget: {type(exc).__name__}")
    if out.broken and (out.effects or depth == 0):
        out.inconclusive.append(f"the pickle does not decode ({out.broken})")
    out.opcodes = counter.opcodes - first
    f.seek(src.tell())
    out.end = src.tell()
    return out


_STOP_CODE = ord(".")


class _Simulator:
    """The unpickler's stack and memo, with one handler per opcode (``table``: byte -> handler).

    The stack never holds more values than opcodes were read, so the opcode budget bounds it.
    """

    def __init__(self, out: PickleAnalysis, torch_mode: bool, depth: int, counter: Counter) -> None:
        self.out = out
        self.torch_mode = torch_mode
        self.depth = depth
        self.counter = counter
        self.cap = counter.limits.max_memo
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}
        self.table: dict[int, tuple[Callable[[_Source], Any] | None, Callable[[Any], None]]] = {
            code: (reader, getattr(self, "op_" + name, None) or self._generic(name))
            for code, (name, reader) in _OPS.items()}

    # --- stack helpers -------------------------------------------------------------------------
    def pop(self) -> Any:
        if not self.stack or self.stack[-1] is _MARK:
            raise _Broken("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is _MARK:
                items = self.stack[i + 1 :]
                del self.stack[i:]
                return items
        raise _Broken("MARK expected on the stack")

    def top(self) -> Any:
        if not self.stack or self.stack[-1] is _MARK:
            raise _Broken("stack underflow")
        return self.stack[-1]

    def unsafe(self, message: str) -> None:
        self.out.unsafe.append(message)
        self.out.effects += 1
        raise _Stop()

    # --- opcode handlers -----------------------------------------------------------------------
    def _generic(self, name: str) -> Callable[[Any], None]:
        if name in _BYTES_OPS:
            def bytes_const(arg: Any) -> None:
                self._nested(arg)
                self.stack.append(arg)
            return bytes_const
        if name in _PY2_STRING_OPS:
            def py2_string(arg: Any) -> None:
                self._nested(arg.encode("latin-1"))
                self.stack.append(arg)
            return py2_string
        if name in _CONST_OPS:
            return self.stack.append
        if name in _FIXED:
            value = _FIXED[name]
            return lambda arg: self.stack.append(value)
        if name in _TUPLE_N:
            n = _TUPLE_N[name]

            def tuple_n(arg: Any) -> None:
                items = [self.pop() for _ in range(n)][::-1]
                self.stack.append(tuple(items))
            return tuple_n
        if name in _PUT_OPS:
            return self.op_PUT
        if name in _GET_OPS:
            return self.op_GET
        if name in _EXT:
            def ext(arg: Any) -> None:
                if arg <= 0:
                    raise _Broken(f"{name} code {arg} <= 0")
                if self.depth > 0:  # bytes inside a pickle: only a registry the loader filled resolves it
                    raise _Broken(f"{name} in a nested value")
                self.unsafe(f"extension registry code ({name}) can name any global")
            return ext
        raise AssertionError(f"no handler for {name}")  # pragma: no cover

    def op_PROTO(self, arg: Any) -> None:
        self.out.protocol = int(arg)
        if arg > 5:
            raise _Broken(f"unsupported pickle protocol {arg}")

    def op_FRAME(self, arg: Any) -> None:
        pass

    def op_MARK(self, arg: Any) -> None:
        self.stack.append(_MARK)

    def op_EMPTY_TUPLE(self, arg: Any) -> None:
        self.stack.append(())

    def op_TUPLE(self, arg: Any) -> None:
        self.stack.append(tuple(self.pop_mark()))

    def op_EMPTY_LIST(self, arg: Any) -> None:
        self.stack.append(ListValue())

    def op_LIST(self, arg: Any) -> None:
        self.stack.append(ListValue(self.pop_mark()))

    def op_EMPTY_DICT(self, arg: Any) -> None:
        self.stack.append(_OPAQUE)

    op_EMPTY_SET = op_EMPTY_DICT

    def op_DICT(self, arg: Any) -> None:
        if len(self.pop_mark()) % 2:
            raise _Broken("odd number of items for DICT")
        self.stack.append(_OPAQUE)

    def op_FROZENSET(self, arg: Any) -> None:
        self.pop_mark()
        self.stack.append(_OPAQUE)

    def op_APPEND(self, arg: Any) -> None:
        stack = self.stack
        if len(stack) >= 2 and type(stack[-2]) is ListValue and stack[-1] is not _MARK:
            stack[-2].append(stack.pop())  # the common case, inlined
            return
        item = self.pop()
        obj = self.top()
        self._container(obj, "APPEND")
        if isinstance(obj, ListValue):
            obj.append(item)

    def op_APPENDS(self, arg: Any) -> None:
        items = self.pop_mark()
        obj = self.top()
        self._container(obj, "APPENDS")
        if isinstance(obj, ListValue):
            obj.extend(items)

    def op_SETITEM(self, arg: Any) -> None:
        self.pop(), self.pop()
        self._container(self.top(), "SETITEM")

    def op_SETITEMS(self, arg: Any) -> None:
        self.pop_mark()
        self._container(self.top(), "SETITEMS")

    def op_ADDITEMS(self, arg: Any) -> None:
        self.pop_mark()
        self._container(self.top(), "ADDITEMS")

    def op_POP(self, arg: Any) -> None:
        if self.stack and self.stack[-1] is _MARK:
            self.pop_mark()  # the unpickler's POP discards a MARK too
        else:
            self.pop()

    def op_POP_MARK(self, arg: Any) -> None:
        self.pop_mark()

    def op_DUP(self, arg: Any) -> None:
        self.stack.append(self.top())

    def op_PUT(self, arg: Any) -> None:
        if int(arg) < 0:
            raise _Broken("negative PUT argument")
        self._memo(int(arg), self.top())

    def op_MEMOIZE(self, arg: Any) -> None:
        self._memo(len(self.memo), self.top())

    def op_GET(self, arg: Any) -> None:
        value = self.memo.get(int(arg), _MARK)
        if value is _MARK:
            raise _Broken(f"memo slot {arg} is read before it is written")
        self.stack.append(value)

    def op_GLOBAL(self, arg: Any) -> None:
        module, _, qual = str(arg).partition(" ")
        self.stack.append(self._global(module, qual))

    def op_STACK_GLOBAL(self, arg: Any) -> None:
        qual, module = self.pop(), self.pop()
        if not (isinstance(module, str) and isinstance(qual, str)):
            if _is_constant(module) and _is_constant(qual):
                raise _Broken("STACK_GLOBAL requires str")
            self.unsafe("STACK_GLOBAL with a name computed at load time")
        self.stack.append(self._global(module, qual))

    def op_REDUCE(self, arg: Any) -> None:
        args, func = self.pop(), self.pop()
        self.stack.append(self._call(func, args, "REDUCE"))

    def op_NEWOBJ(self, arg: Any) -> None:
        args, cls = self.pop(), self.pop()
        self.stack.append(self._call(cls, args, "NEWOBJ"))

    def op_NEWOBJ_EX(self, arg: Any) -> None:
        _kwargs, args, cls = self.pop(), self.pop(), self.pop()
        self.stack.append(self._call(cls, args, "NEWOBJ_EX"))

    def op_BUILD(self, arg: Any) -> None:
        self._build()

    def op_BINPERSID(self, arg: Any) -> None:
        self.stack.append(self._persistent_id(self.pop(), "BINPERSID"))

    def op_PERSID(self, arg: Any) -> None:
        self.stack.append(self._persistent_id(arg, "PERSID"))

    def op_INST(self, arg: Any) -> None:
        module, _, qual = str(arg).partition(" ")
        self._global(module, qual)
        self.unsafe("INST instantiates a class by name (never written by torch)")

    def op_OBJ(self, arg: Any) -> None:
        items = self.pop_mark()
        if not items:
            raise _Broken("OBJ without a class")
        if _is_constant(items[0]):
            raise _Broken(f"OBJ of {_describe(items[0])}, which is not callable")
        self.unsafe(f"OBJ instantiates {_describe(items[0])} (never written by torch)")

    def op_NEXT_BUFFER(self, arg: Any) -> None:
        raise _Broken("out-of-band buffer without a buffers argument")

    def op_READONLY_BUFFER(self, arg: Any) -> None:
        self.top()

    def op_STOP(self, arg: Any) -> None:
        self.out.result = self.pop()

    # --- semantics -----------------------------------------------------------------------------
    def _memo(self, key: int, value: Any) -> None:
        if key > self.cap:
            # CPython's C unpickler sizes its memo array by the largest index: a few bytes of
            # pickle make ``pickle.load`` allocate gigabytes (found by benchmarks/fuzz_safety.py)
            self.unsafe(f"memo index {key} (the C unpickler allocates memory for every index below it)")
        self.memo[key] = value
        if len(self.memo) > self.cap:
            raise _OverBudget(f"more than {self.cap} memo entries (PROVSCAN_SAFETY_MAX_MEMO)")

    def _global(self, module: str, qual: str) -> GlobalRef:
        if not (_dotted(module) and _dotted(qual)):
            # the unpickler's import or attribute lookup fails on such a name
            raise _Broken(f"global {_clip(module)}.{_clip(qual)} is not an importable name")
        ref = GlobalRef(module, qual)
        q = ref.qualified
        self.out.effects += 1
        if q not in self.out.globals:
            self.out.globals.append(q)
        if classify_global(q) is None:
            self.unsafe(f"global {q} is not on the allowlist")
        return ref

    def _call(self, func: Any, args: Any, op: str) -> Call:
        if not isinstance(func, GlobalRef):
            if _is_constant(func):
                raise _Broken(f"{op} of {_describe(func)}, which is not callable")
            self.unsafe(f"{op} calls {_describe(func)}, not an allowlisted global")
        self.out.effects += 1
        if classify_global(func.qualified) != "callable":
            self.unsafe(f"{op} calls {func.qualified}, which is allowed only as a value")
        if not isinstance(args, tuple):
            raise _Reject(f"{op} arguments of {func.qualified} are not a tuple")
        if func.qualified == "_codecs.encode":
            if not (len(args) == 2 and isinstance(args[0], str) and args[1] == "latin1"):
                self.unsafe("_codecs.encode with anything but (str, 'latin1')")
            self._nested(args[0].encode("latin-1", "replace"))
        call = Call(func, args)
        if func.qualified.startswith("torch._utils._rebuild_tensor"):
            self._tensor(call)
        return call

    def _build(self) -> None:
        self.pop()
        obj = self.top()
        self.out.effects += 1
        if isinstance(obj, Call) and obj.func.qualified == "collections.OrderedDict":
            return
        if _is_constant(obj):
            raise _Broken(f"BUILD on {_describe(obj)} fails in the unpickler")
        self.unsafe(f"BUILD sets the state of {_describe(obj)}")

    def _container(self, obj: Any, op: str) -> None:
        if isinstance(obj, (ListValue, Opaque)) or (
                isinstance(obj, Call) and obj.func.qualified == "collections.OrderedDict"):
            return
        if _is_constant(obj):
            raise _Broken(f"{op} on {_describe(obj)} fails in the unpickler")
        self.unsafe(f"{op} on {_describe(obj)} (calls its methods)")

    def _persistent_id(self, pid: Any, op: str) -> PersistentId:
        if not self.torch_mode:
            # pickle.load (and the first pickles torch reads) have no persistent_load: they fail here
            raise _Broken("persistent id, and no persistent_load outside a torch checkpoint")
        if op == "PERSID":
            raise _Reject("text persistent id in a torch checkpoint")
        ok = (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
              and isinstance(pid[1], GlobalRef) and pid[1].qualified in STORAGE_TYPES
              and isinstance(pid[2], str) and isinstance(pid[3], str)
              and isinstance(pid[4], int) and not isinstance(pid[4], bool) and pid[4] >= 0
              and (len(pid) == 5 or pid[5] is None))
        if not ok:
            raise _Reject(f"persistent id not understood: {_describe(pid)}")
        dtype, esize = STORAGE_TYPES[pid[1].qualified]
        st = Storage(pid[2], pid[1].qualified, dtype, esize, pid[3], pid[4])
        prev = self.out.storages.get(st.key)
        if prev is not None and (prev.storage_type, prev.numel) != (st.storage_type, st.numel):
            self.unsafe(f"storage {_clip(st.key)} is declared twice with different types or sizes")
        self.out.storages[st.key] = st
        return PersistentId(pid)

    def _tensor(self, call: Call) -> None:
        a = call.args
        if not (len(a) >= 4 and isinstance(a[0], PersistentId) and _is_int(a[1])
                and _int_tuple(a[2]) and _int_tuple(a[3]) and len(a[2]) == len(a[3])):
            raise _Reject(f"tensor rebuild arguments not understood: {_describe(a)}")
        pid = a[0].value
        if not self.torch_mode or not isinstance(pid, tuple) or len(pid) < 3 or pid[2] not in self.out.storages:
            raise _Reject("tensor rebuild without a torch storage")
        st = self.out.storages[pid[2]]
        t = Tensor(st.key, st.dtype, a[1], tuple(a[2]), tuple(a[3]))
        if t.offset < 0 or any(s < 0 for s in t.size) or any(s < 0 for s in t.stride):
            self.unsafe("tensor with a negative offset, size or stride")
        if t.span() > st.numel:
            self.unsafe(f"tensor view reaches element {t.span()} of storage {_clip(st.key)}, which has {st.numel}")
        self.out.tensors.append(t)

    def _nested(self, data: bytes) -> None:
        """A bytes value that is itself a pickle is analysed too (it could be loaded later)."""
        if len(data) < 2:
            return
        limit = self.counter.limits.max_nested_pickles
        if self.depth > limit:
            return  # a probe: only asks whether the bytes are a pickle
        inner = analyse_pickle(data, depth=self.depth + 1, counter=self.counter)
        if inner.over_budget:
            raise _OverBudget(inner.inconclusive[-1].removeprefix("over budget: "))
        if not inner.is_pickle:
            return
        if self.depth == limit:
            raise _Reject(f"pickles nested in bytes values more than {limit} levels deep "
                          f"(PROVSCAN_SAFETY_MAX_NESTED_PICKLES)")
        if inner.unsafe:
            self.out.unsafe += [f"nested pickle in a bytes value: {m}" for m in inner.unsafe]
            self.out.effects += 1
            raise _Stop()
        if inner.verdict != "safe":
            raise _Reject(f"nested pickle in a bytes value: {'; '.join(inner.inconclusive) or 'incomplete'}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_tuple(v: Any) -> bool:
    return isinstance(v, tuple) and all(_is_int(x) for x in v)


def _is_constant(v: Any) -> bool:
    """A value with no user-defined behaviour: calling it or setting its state fails."""
    return v is None or isinstance(v, (*_CONSTANT_TYPES, bytearray, ListValue, Opaque))


def _dotted(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _describe(v: Any, depth: int = 2) -> str:
    """A short description of a simulated value (bounded: shared structures stay cheap)."""
    if isinstance(v, GlobalRef):
        return _clip(v.qualified)
    if isinstance(v, Call):
        return f"the result of {_clip(v.func.qualified)}(...)"
    if isinstance(v, PersistentId):
        return "a persistent id"
    if isinstance(v, Opaque):
        return "a dict or set"
    if isinstance(v, ListValue):
        return f"a list of {len(v)}"
    if isinstance(v, tuple):
        if depth <= 0:
            return f"a tuple of {len(v)}"
        inner = ", ".join(_describe(x, depth - 1) for x in v[:6])
        return "(" + inner + (", ..." if len(v) > 6 else "") + ")"
    if isinstance(v, (str, bytes, bytearray)):
        return _clip(repr(v[:64]), 40)
    if isinstance(v, int) and v.bit_length() > 64:
        return f"an integer of {v.bit_length()} bits"
    return _clip(repr(v), 40)
