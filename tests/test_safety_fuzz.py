"""Property tests: the pickle analyser never raises, never runs anything, and never calls a
stream 'safe' that names a global outside the allowlist."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from provscan.safety.allowlist import classify_global
from provscan.safety.pickle_scan import analyse_pickle

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    # empty bytes pickle as builtins.bytes() below protocol 3: refused, as weights-only torch does
    | st.binary(min_size=1, max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data):
    a = analyse_pickle(b"\x80\x04" + data)
    assert a.verdict in ("safe", "unsafe", "inconclusive")
    if a.verdict == "safe":
        assert all(classify_global(g) for g in a.globals)


@settings(max_examples=150, deadline=None)
@given(_values, st.integers(0, 5))
def test_plain_python_values_are_safe(value, protocol):
    a = analyse_pickle(pickle.dumps(value, protocol=protocol))
    assert a.verdict == "safe", (a.unsafe, a.inconclusive)
