"""Work budgets of the file-safety scan: every cost an input controls has a cap.

Going over a budget makes the file **inconclusive** (never safe), quickly. Each budget has a safe
default and can be changed with an environment variable ``PROVSCAN_SAFETY_<NAME>`` (an integer),
read when a scan starts; docs/safety.md lists them. Caps that the real loaders enforce themselves
(the safetensors header limit of the ``safetensors`` library) are not budgets: breaking them is
``unsafe`` (the file is not what it claims to be).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from provscan.errors import ProvscanError

ENV_PREFIX = "PROVSCAN_SAFETY_"


@dataclass(frozen=True)
class Budgets:
    """Caps on the work and memory one file may cost the scan."""

    #: opcodes decoded per pickle file (all its streams and nested pickles together); a torch
    #: checkpoint needs about 30 per tensor
    max_opcodes: int = 1_000_000
    #: memo entries and values on the unpickler stack, each
    max_memo: int = 1_000_000
    #: bytes of string/bytes constants held by one pickle analysis (also caps one constant)
    max_constant_bytes: int = 256 * 1024 * 1024
    #: levels of pickles nested inside pickled ``bytes`` that are analysed; deeper is inconclusive
    max_nested_pickles: int = 8
    #: bytes of a torch zip's ``data.pkl``
    max_pickle_bytes: int = 1 << 30
    #: members of a zip archive
    max_zip_members: int = 100_000
    #: values (containers and scalars, counted before parsing) in a JSON file or safetensors header
    max_json_values: int = 5_000_000
    #: dimensions of one safetensors tensor
    max_rank: int = 64
    #: bytes of a JSON file that is parsed (config, tokenizer, index); larger is inconclusive
    max_json_bytes: int = 256 * 1024 * 1024
    #: nesting depth of a JSON document
    max_json_depth: int = 64
    #: bytes of a protobuf file (SentencePiece model) that is walked
    max_protobuf_bytes: int = 64 * 1024 * 1024


def budgets() -> Budgets:
    """The defaults, overridden by ``PROVSCAN_SAFETY_<NAME>`` environment variables."""
    values = {}
    for f in fields(Budgets):
        raw = os.environ.get(ENV_PREFIX + f.name.upper(), "").strip()
        if raw:
            try:
                value = int(raw.replace("_", ""))
            except ValueError:
                value = 0
            if value <= 0:
                raise ProvscanError(f"{ENV_PREFIX}{f.name.upper()}={raw!r}: expected a positive integer")
            values[f.name] = value
    return Budgets(**values)
