"""`loads`: orjson where it gives what the stdlib parser gives, the stdlib parser elsewhere.

orjson parses a 3 KB vitals window ~3x faster than `json.loads`. It refuses what the stdlib
accepts (NaN/Infinity literals, lone surrogates) and turns integers beyond 64 bits into
floats; so any refusal, and any input with a run of 19+ digits, goes to the stdlib parser,
whose result and exceptions (ValueError, UnicodeDecodeError, RecursionError) stay the contract.
Encoding stays with the stdlib: orjson writes NaN as null where the contracts must refuse it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_DIGITS = bytes(0x31 if 0x30 <= i <= 0x39 else 0x30 for i in range(256))  # digit -> "1"
_LONG_RUN = b"1" * 19  # 19 digits in a row: perhaps an integer beyond 64 bits


def loads(data: bytes) -> Any:
    """Parse UTF-8 JSON bytes exactly as `json.loads(data.decode("utf-8"))` does."""
    if _LONG_RUN not in data.translate(_DIGITS):  # translate + find: ~1.5 us for 3 KB
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data.decode("utf-8"))
