"""The default-deny allowlist of pickle globals (``module.name``).

A pickle may only name a global listed here; any other global refuses the file (verdict
``unsafe``). The list is a strict subset of what ``torch.load(weights_only=True)`` accepts: what
``torch.save`` writes for a state dict of plain dense tensors (the format of ``pytorch_model.bin``
files written by transformers and of ``torch.save(model.state_dict())``). Each entry says why it
is harmless.

Entries are split by how the pickle may use them:

- :data:`CALLABLE_GLOBALS` may be called (``REDUCE`` / ``NEWOBJ``);
- :data:`VALUE_GLOBALS` may only appear as values (a storage type inside a persistent id, a
  dtype); calling one is refused.
"""

from __future__ import annotations

CALLABLE_GLOBALS: dict[str, str] = {
    # Rebuilds a dense tensor as a view (offset, size, stride) of a storage that the loader
    # supplies through a persistent id; it allocates nothing and runs no user code.
    "torch._utils._rebuild_tensor_v2": "dense tensor view of a loaded storage",
    # The older (pre-1.x) spelling of the same rebuild, without the hooks argument.
    "torch._utils._rebuild_tensor": "dense tensor view of a loaded storage (old spelling)",
    # Wraps a rebuilt tensor in nn.Parameter with a requires_grad flag; state dicts of modules
    # saved without .detach() contain it.
    "torch._utils._rebuild_parameter": "wraps a tensor in nn.Parameter",
    # The container torch uses for every state dict; calling it with no arguments builds an
    # empty ordered dict, then SETITEMS fills it and BUILD sets its ``_metadata`` attribute.
    "collections.OrderedDict": "state-dict container",
    # A tuple subclass holding a shape; building one from a tuple of ints runs no user code.
    "torch.Size": "shape tuple",
    # Protocol-2 pickles write ``bytes`` values as _codecs.encode(str, "latin1"): it only encodes
    # a string (no lookup of other codecs is reachable: the codec name must be a constant).
    "_codecs.encode": "bytes values in protocol 2",
}

# Legacy typed-storage classes: torch.save names one in each persistent id to give the element
# type of the raw bytes; under weights_only they are replaced by inert markers and never called.
STORAGE_TYPES: dict[str, tuple[str, int]] = {
    "torch.DoubleStorage": ("float64", 8),
    "torch.FloatStorage": ("float32", 4),
    "torch.HalfStorage": ("float16", 2),
    "torch.BFloat16Storage": ("bfloat16", 2),
    "torch.LongStorage": ("int64", 8),
    "torch.IntStorage": ("int32", 4),
    "torch.ShortStorage": ("int16", 2),
    "torch.CharStorage": ("int8", 1),
    "torch.ByteStorage": ("uint8", 1),
    "torch.BoolStorage": ("bool", 1),
    "torch.ComplexFloatStorage": ("complex64", 8),
    "torch.ComplexDoubleStorage": ("complex128", 16),
}

# torch dtypes pickle as a global naming the dtype object itself (an immutable singleton).
DTYPE_GLOBALS = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
                 "uint8", "bool", "complex64", "complex128")

VALUE_GLOBALS: dict[str, str] = {
    **{name: f"storage type ({dt})" for name, (dt, _) in STORAGE_TYPES.items()},
    **{f"torch.{d}": "dtype singleton" for d in DTYPE_GLOBALS},
}


def classify_global(qualified: str) -> str | None:
    """``"callable"``, ``"value"`` or None (not allowed)."""
    if qualified in CALLABLE_GLOBALS:
        return "callable"
    if qualified in VALUE_GLOBALS:
        return "value"
    return None
