"""Static analysis of a pickle stream: nothing is unpickled, nothing is imported.

The stream is decoded opcode by opcode (:func:`pickletools.genops`) and the unpickler's stack and
memo are simulated with inert values: constants, tuples, lists, globals (:class:`GlobalRef`),
calls (:class:`Call`) and persistent ids (:class:`PersistentId`). That lets the analysis resolve
``STACK_GLOBAL`` names that come through the memo, see what each ``REDUCE`` calls and with
which arguments, and collect the tensors a torch checkpoint would rebuild.

Default-deny: a global outside :mod:`provscan.safety.allowlist`, a call of anything but an
allowlisted callable, a global name computed at load time, extension-registry opcodes and
``INST``/``OBJ`` make the stream **unsafe**; an opcode or structure the analysis does not model
makes it **inconclusive**.
"""

from __future__ import annotations

import io
import pickletools
from dataclasses import dataclass, field
from typing import IO, Any

from provscan.safety.allowlist import STORAGE_TYPES, classify_global

MAX_OPCODES = 50_000_000
NESTED_DEPTH = 3


@dataclass(frozen=True)
class GlobalRef:
    module: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class Call:
    func: GlobalRef
    args: Any


@dataclass(frozen=True)
class PersistentId:
    value: Any


class Opaque:
    """A value the analysis does not track (a dict, a set, the result of BUILD...)."""


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

    @property
    def verdict(self) -> str:
        if self.unsafe:
            return "unsafe"
        if self.inconclusive:
            return "inconclusive"
        return "safe"

    def merge(self, other: PickleAnalysis, prefix: str = "") -> None:
        self.unsafe += [prefix + m for m in other.unsafe]
        self.inconclusive += [prefix + m for m in other.inconclusive]
        self.globals += [g for g in other.globals if g not in self.globals]


class _Reject(Exception):
    """Stops the simulation at the first structure that cannot be modelled."""


class _Stop(_Reject):
    """Stops the simulation right after an unsafe finding (nothing more to learn)."""


_CONST_OPS = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
              "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
              "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"}
_FIXED = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_TUPLE_N = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_FORBIDDEN = {"EXT1": "extension registry code (EXT1) can name any global",
              "EXT2": "extension registry code (EXT2) can name any global",
              "EXT4": "extension registry code (EXT4) can name any global",
              "INST": "INST instantiates a class by name (never written by torch)",
              "OBJ": "OBJ instantiates a class from the stack (never written by torch)"}
_UNMODELLED = {"BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER", "PERSID"}


def analyse_pickle(stream: IO[bytes] | bytes, torch_mode: bool = False, depth: int = 0) -> PickleAnalysis:
    """Analyse one pickle stream from the current position up to and including its STOP.

    ``torch_mode`` also checks the persistent ids and tensor rebuilds of a torch checkpoint.
    After the call the stream is positioned right after STOP (``analysis.end``).
    """
    f = io.BytesIO(stream) if isinstance(stream, (bytes, bytearray)) else stream
    out = PickleAnalysis()
    sim = _Simulator(out, torch_mode, depth)
    try:
        stopped = False
        for op, arg, _pos in pickletools.genops(f):
            out.opcodes += 1
            if out.opcodes > MAX_OPCODES:
                raise _Reject("more opcodes than the analysis allows")
            sim.step(op.name, arg)
            if op.name == "STOP":
                stopped = True
                break
        if not stopped:
            raise _Reject("the pickle has no STOP opcode")
    except _Stop:
        pass
    except _Reject as exc:
        out.inconclusive.append(str(exc))
    except (ValueError, EOFError, KeyError, UnicodeDecodeError, TypeError) as exc:
        out.inconclusive.append(f"the pickle does not decode ({type(exc).__name__}: {exc})")
    out.end = f.tell()
    return out


class _Simulator:
    def __init__(self, out: PickleAnalysis, torch_mode: bool, depth: int) -> None:
        self.out = out
        self.torch_mode = torch_mode
        self.depth = depth
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}

    # --- stack helpers -------------------------------------------------------------------------
    def pop(self) -> Any:
        if not self.stack or self.stack[-1] is _MARK:
            raise _Reject("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is _MARK:
                items = self.stack[i + 1 :]
                del self.stack[i:]
                return items
        raise _Reject("MARK expected on the stack")

    def top(self) -> Any:
        if not self.stack:
            raise _Reject("stack underflow")
        return self.stack[-1]

    # --- one opcode ----------------------------------------------------------------------------
    def step(self, name: str, arg: Any) -> None:  # noqa: C901 - a flat dispatch on opcode names
        if name in _FORBIDDEN:
            self.out.unsafe.append(_FORBIDDEN[name])
            if name == "INST":
                module, _, qual = str(arg).partition(" ")
                self._global(module, qual)
            raise _Stop()
        if name in _UNMODELLED:
            raise _Reject(f"opcode {name} is not used by torch checkpoints")
        if name == "PROTO":
            self.out.protocol = int(arg)
            if arg > 5:
                raise _Reject(f"unknown pickle protocol {arg}")
        elif name == "FRAME":
            pass
        elif name in _CONST_OPS:
            if isinstance(arg, (bytes, bytearray)):
                self._nested(bytes(arg))
            self.stack.append(arg)
        elif name in _FIXED:
            self.stack.append(_FIXED[name])
        elif name == "MARK":
            self.stack.append(_MARK)
        elif name == "EMPTY_TUPLE":
            self.stack.append(())
        elif name == "TUPLE":
            self.stack.append(tuple(self.pop_mark()))
        elif name in _TUPLE_N:
            items = [self.pop() for _ in range(_TUPLE_N[name])][::-1]
            self.stack.append(tuple(items))
        elif name == "EMPTY_LIST":
            self.stack.append(ListValue())
        elif name == "LIST":
            self.stack.append(ListValue(self.pop_mark()))
        elif name in ("EMPTY_DICT", "EMPTY_SET"):
            self.stack.append(_OPAQUE)
        elif name in ("DICT", "FROZENSET"):
            self.pop_mark()
            self.stack.append(_OPAQUE)
        elif name in ("APPEND", "APPENDS"):
            items = [self.pop()] if name == "APPEND" else self.pop_mark()
            self._container(self.top(), name)
            if isinstance(self.top(), ListValue):
                self.top().extend(items)
        elif name in ("SETITEM", "SETITEMS", "ADDITEMS"):
            if name == "SETITEM":
                self.pop(), self.pop()
            else:
                self.pop_mark()
            self._container(self.top(), name)
        elif name == "POP":
            self.pop()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            self.stack.append(self.top())
        elif name in _PUT_OPS:
            self.memo[int(arg)] = self.top()
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.top()
        elif name in _GET_OPS:
            if int(arg) not in self.memo:
                raise _Reject(f"memo slot {arg} is read before it is written")
            self.stack.append(self.memo[int(arg)])
        elif name == "GLOBAL":
            module, _, qual = str(arg).partition(" ")
            self.stack.append(self._global(module, qual))
        elif name == "STACK_GLOBAL":
            qual, module = self.pop(), self.pop()
            if not (isinstance(module, str) and isinstance(qual, str)):
                self.out.unsafe.append("STACK_GLOBAL with a name computed at load time")
                raise _Stop()
            self.stack.append(self._global(module, qual))
        elif name == "REDUCE":
            args, func = self.pop(), self.pop()
            self.stack.append(self._call(func, args, "REDUCE"))
        elif name == "NEWOBJ":
            args, cls = self.pop(), self.pop()
            self.stack.append(self._call(cls, args, "NEWOBJ"))
        elif name == "NEWOBJ_EX":
            _kwargs, args, cls = self.pop(), self.pop(), self.pop()
            self.stack.append(self._call(cls, args, "NEWOBJ_EX"))
        elif name == "BUILD":
            self.pop()
            obj = self.top()
            if not (isinstance(obj, Call) and obj.func.qualified == "collections.OrderedDict"):
                self.out.unsafe.append(f"BUILD sets the state of {_describe(obj)}")
                raise _Stop()
        elif name == "BINPERSID":
            self.stack.append(self._persistent_id(self.pop()))
        elif name == "STOP":
            if len(self.stack) != 1:
                raise _Reject(f"STOP with {len(self.stack)} values on the stack")
            self.out.result = self.stack[0]
        else:
            raise _Reject(f"opcode {name} is not modelled")

    # --- semantics -----------------------------------------------------------------------------
    def _global(self, module: str, qual: str) -> GlobalRef:
        ref = GlobalRef(module, qual)
        q = ref.qualified
        if q not in self.out.globals:
            self.out.globals.append(q)
        if classify_global(q) is None:
            self.out.unsafe.append(f"global {q} is not on the allowlist")
            raise _Stop()
        return ref

    def _call(self, func: Any, args: Any, op: str) -> Call:
        if not isinstance(func, GlobalRef):
            self.out.unsafe.append(f"{op} calls {_describe(func)}, not an allowlisted global")
            raise _Stop()
        if classify_global(func.qualified) != "callable":
            self.out.unsafe.append(f"{op} calls {func.qualified}, which is allowed only as a value")
            raise _Stop()
        if not isinstance(args, tuple):
            raise _Reject(f"{op} arguments of {func.qualified} are not a tuple")
        if func.qualified == "_codecs.encode" and not (
                len(args) == 2 and isinstance(args[0], str) and args[1] == "latin1"):
            self.out.unsafe.append("_codecs.encode with anything but (str, 'latin1')")
            raise _Stop()
        call = Call(func, args)
        if func.qualified.startswith("torch._utils._rebuild_tensor"):
            self._tensor(call)
        return call

    def _container(self, obj: Any, op: str) -> None:
        ok = isinstance(obj, (ListValue, Opaque)) or (
            isinstance(obj, Call) and obj.func.qualified == "collections.OrderedDict")
        if not ok:
            self.out.unsafe.append(f"{op} on {_describe(obj)} (calls its methods)")
            raise _Stop()

    def _persistent_id(self, pid: Any) -> PersistentId:
        if not self.torch_mode:
            raise _Reject("persistent id outside a torch checkpoint")
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
            self.out.unsafe.append(f"storage {st.key} is declared twice with different types or sizes")
            raise _Stop()
        self.out.storages[st.key] = st
        return PersistentId(pid)

    def _tensor(self, call: Call) -> None:
        a = call.args
        if not (len(a) >= 4 and isinstance(a[0], PersistentId) and _is_int(a[1])
                and _int_tuple(a[2]) and _int_tuple(a[3]) and len(a[2]) == len(a[3])):
            raise _Reject(f"tensor rebuild arguments not understood: {_describe(a)}")
        pid = a[0].value
        st = self.out.storages[pid[2]]
        t = Tensor(st.key, st.dtype, a[1], tuple(a[2]), tuple(a[3]))
        if t.offset < 0 or any(s < 0 for s in t.size) or any(s < 0 for s in t.stride):
            self.out.unsafe.append("tensor with a negative offset, size or stride")
            raise _Stop()
        if t.span() > st.numel:
            self.out.unsafe.append(
                f"tensor view reaches element {t.span()} of storage {st.key}, which has {st.numel}")
            raise _Stop()
        self.out.tensors.append(t)

    def _nested(self, data: bytes) -> None:
        """A bytes constant that is itself a pickle is analysed too (it could be loaded later)."""
        if self.depth >= NESTED_DEPTH or len(data) < 4 or data[0] != 0x80 or data[1] > 5:
            return
        inner = analyse_pickle(data, depth=self.depth + 1)
        if inner.unsafe:
            self.out.unsafe += [f"nested pickle in a bytes value: {m}" for m in inner.unsafe]
            raise _Stop()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_tuple(v: Any) -> bool:
    return isinstance(v, tuple) and all(_is_int(x) for x in v)


def _describe(v: Any) -> str:
    if isinstance(v, GlobalRef):
        return v.qualified
    if isinstance(v, Call):
        return f"the result of {v.func.qualified}(...)"
    if isinstance(v, PersistentId):
        return "a persistent id"
    if isinstance(v, Opaque):
        return "a dict or set"
    if isinstance(v, tuple):
        return "(" + ", ".join(_describe(x) for x in v[:6]) + (", ..." if len(v) > 6 else "") + ")"
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."
