"""worker/contracts/jsonfast.py parses exactly as the stdlib parser (results and exceptions)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.contracts.jsonfast import loads

SPECIAL = [
    b"NaN", b"[NaN, -Infinity]", b"[1e400]", b'{"v": 123456789012345678901234567890}',
    b"-9223372036854775809", b"18446744073709551616", b'"\\ud800"', b"\xef\xbb\xbf{}",
    b'{"a": 1, "a": 2}', b"[-0.0, 1.0000000000000002]", b" {\"a\" : 1 } ", b"[1,]",
    b'{"a":1}garbage', b"\x00", b'"\xff"', b"[" * 5000 + b"]" * 5000, b"1" * 400, b"",
    b"0.1234567890123456789012", b'{"values": [[1, null, 2.5]]}',
]


def _outcome(parse, data: bytes) -> tuple[str, object]:
    try:
        return "ok", parse(data)
    except RecursionError:
        return "error", RecursionError
    except (ValueError, UnicodeDecodeError) as exc:
        return "error", type(exc)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("data", SPECIAL)
def test_special_inputs_parse_as_the_stdlib_parses_them(data: bytes) -> None:
    got, want = _outcome(loads, data), _outcome(lambda d: json.loads(d.decode("utf-8")), data)
    assert got[0] == want[0]
    assert _same(got[1], want[1]) if got[0] == "ok" else got[1] is want[1]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children), max_leaves=30)


@given(JSON)
def test_any_document_parses_as_the_stdlib_parses_it(value: object) -> None:
    data = json.dumps(value).encode("utf-8")  # NaN/Infinity literals and huge ints included
    assert _same(loads(data), json.loads(data.decode("utf-8")))
