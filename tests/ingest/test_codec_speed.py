"""The fast JSON path of the codec (orjson, window fast path) gives what the standard one did."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.codec import _accel, parse_json_object
from gateway.contract import MAX_PAYLOAD_BYTES, ReasonCode
from gateway.errors import PayloadError


def _reject(name: str) -> Any:
    raise PayloadError(ReasonCode.BAD_JSON, name)


def _reference(payload: bytes) -> Any:
    """The standard-library parse the contract was written against: value or reason code."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return ReasonCode.TOO_LARGE
    try:
        obj = json.loads(payload.decode("utf-8"), parse_constant=_reject)
    except (ValueError, RecursionError):
        return ReasonCode.BAD_JSON
    return obj if isinstance(obj, dict) else ReasonCode.BAD_SCHEMA


def _ours(payload: bytes) -> Any:
    try:
        return parse_json_object(payload)
    except PayloadError as exc:
        return exc.reason


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)

EDGES = [
    b'{"x": NaN}',
    b'{"x": Infinity}',
    b'{"x": 1e400}',
    b'{"x": 123456789012345678901234567890}',
    b'{"x": "\\ud800"}',
    b'{"a": 1, "a": 2}',
    b"[" * 3000 + b"]" * 3000,
    b'{"x": [' * 600 + b"]" * 600 + b"}",
    b"\xff{}",
    b"",
    b"[]",
    b'"text"',
    b'{"x": 1}  ',
    b'{"x": 1} x',
    b" " * (MAX_PAYLOAD_BYTES + 1),
]


@pytest.mark.parametrize("payload", EDGES, ids=range(len(EDGES)))
def test_edge_payloads_keep_their_verdict(payload: bytes) -> None:
    assert _ours(payload) == _reference(payload)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _json, max_size=6))
def test_any_object_parses_as_the_standard_library_does(obj: dict[str, Any]) -> None:
    payload = json.dumps(obj).encode()
    got, expected = _ours(payload), _reference(payload)
    assert got == expected
    if isinstance(expected, dict):
        assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(
            st.floats(allow_nan=False, allow_infinity=False)
            | st.integers(-5, 5)
            | st.booleans()
            | st.just(1e308),
            min_size=2,
            max_size=4,
        ),
        min_size=1,
        max_size=20,
    )
)
def test_window_fast_path_equals_the_sample_by_sample_check(value: list[list[Any]]) -> None:
    def slow() -> Any:
        try:
            out = []
            for i, t in enumerate(value):
                if len(t) != 3:
                    return ReasonCode.BAD_SCHEMA, f"accel_g[{i}] must be [x, y, z]"
                for c in t:
                    if isinstance(c, bool) or not math.isfinite(float(c)):
                        return ReasonCode.BAD_SCHEMA, f"accel_g[{i}] must be a number"
                out.append(tuple(float(c) for c in t))
            return tuple(out)
        except OverflowError:
            return ReasonCode.BAD_SCHEMA, "overflow"

    try:
        got: Any = _accel(value)
    except PayloadError as exc:
        got = exc.reason, exc.detail
    expected = slow()
    if isinstance(expected, tuple) and expected and isinstance(expected[0], ReasonCode):
        assert got[0] is expected[0]
    else:
        assert got == expected
        assert all(type(c) is float for s in got for c in s)
