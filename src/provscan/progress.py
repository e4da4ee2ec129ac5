"""Progress bars that stay quiet in CI, in tests and with ``--quiet``."""

from __future__ import annotations

import contextvars
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("provscan_quiet", default=False)


def set_quiet(value: bool) -> None:
    _quiet.set(value)


def is_quiet() -> bool:
    return _quiet.get() or bool(os.environ.get("PROVSCAN_QUIET")) or not sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, **kw: Any) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr, unless quiet or stderr is not a terminal."""
    if is_quiet():
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=total, leave=False, file=sys.stderr, **kw)
