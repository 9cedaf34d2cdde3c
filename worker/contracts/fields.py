"""Field-level decoding shared by every schema: JSON objects, schema ids, ids, timestamps.

Every failure raises `PoisonMessage` with a bounded `DeadLetterReason`; the text never carries
patient identifiers or input values.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from worker.contracts.jsonfast import loads as fast_loads
from worker.errors import DeadLetterReason, PoisonMessage

MAX_ID_CHARS = 256
UNSAFE_ID_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""Control characters and lone surrogates (valid JSON escapes, but no valid UTF-8 Kafka key)."""
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""Event times outside [EARLIEST, LATEST] are refused: they are sender bugs, and far dates
overflow datetime arithmetic (year 9999 plus a window)."""


def json_object(value: bytes) -> dict[str, Any]:
    """Parse UTF-8 JSON that must be an object; PoisonMessage(JSON_DECODE) otherwise."""
    try:
        obj = fast_loads(value)  # orjson, the stdlib where the two could differ
    except (UnicodeDecodeError, ValueError) as exc:
        raise PoisonMessage(DeadLetterReason.JSON_DECODE, f"invalid JSON: {type(exc).__name__} at {_where(exc)}") from exc
    except RecursionError as exc:  # deeply nested arrays/objects
        raise PoisonMessage(DeadLetterReason.JSON_DECODE, "invalid JSON: nested too deeply") from exc
    if not isinstance(obj, dict):
        raise PoisonMessage(DeadLetterReason.JSON_DECODE, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _where(exc: Exception) -> str:
    pos = getattr(exc, "pos", None)
    return f"char {pos}" if pos is not None else "start"


def dump(body: dict[str, Any], *, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON; NaN/inf are refused (ValueError)."""
    return json.dumps(body, separators=(",", ":"), allow_nan=False, sort_keys=sort_keys).encode("utf-8")


def check_schema(obj: dict[str, Any], expected: str) -> None:
    """`schema` must equal `expected`; another version of the same family -> SCHEMA_VERSION."""
    schema = obj.get("schema")
    if schema == expected:
        return
    family = expected.rsplit("/", 1)[0] + "/"
    if isinstance(schema, str) and schema.startswith(family):
        raise PoisonMessage(DeadLetterReason.SCHEMA_VERSION, f"unsupported schema version {schema[:64]!r}, expected {expected!r}")
    raise PoisonMessage(DeadLetterReason.SCHEMA, f"field 'schema' must be {expected!r}")


def text(obj: dict[str, Any], name: str) -> str:
    """A required identifier field: a non-empty string of bounded length that encodes as UTF-8
    without control characters (ids become Kafka keys and header values)."""
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"field {name!r} must be a non-empty string of at most {MAX_ID_CHARS} chars")
    if UNSAFE_ID_CHARS.search(value):
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"field {name!r} contains a control character or a lone surrogate")
    return value


def optional_text(obj: dict[str, Any], name: str) -> str | None:
    """An identifier field that may be absent or null."""
    return None if obj.get(name) is None else text(obj, name)


def parse_utc(value: object, name: str) -> datetime:
    """ISO-8601 timestamp with a zone (or Z) -> aware UTC datetime; PoisonMessage otherwise."""
    if not isinstance(value, str):
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"field {name!r} must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        if moment.tzinfo is None:
            raise PoisonMessage(DeadLetterReason.SCHEMA, f"field {name!r} must carry a UTC offset (e.g. 'Z')")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # OverflowError: year 1 or 9999 shifted to UTC
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"field {name!r} is not an ISO-8601 time") from exc


def in_range(moment: datetime, name: str) -> datetime:
    """`moment` when it lies within [EARLIEST, LATEST]; PoisonMessage(SCHEMA) otherwise."""
    if not EARLIEST <= moment <= LATEST:
        raise PoisonMessage(DeadLetterReason.SCHEMA, f"field {name!r} must lie between "
                            f"{EARLIEST.year} and {LATEST.year}")
    return moment


def iso(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds and a Z suffix (the wire form of every timestamp)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
