"""Re-used event ids: a bounded memory of the input digest last seen under each event id.

The prediction key stays the event id (a re-delivery must repeat it), so two different inputs
sent under one event id would overwrite each other downstream. Each prediction carries its
input's digest, which lets consumers tell them apart; the worker also remembers the digests of
the most recent `capacity` event ids per kind and flags a prediction whose event id it saw with
another digest (`event_id_conflict`). The memory is per process: a conflict across workers or
restarts is only visible through `input_digest`.
"""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_CAPACITY = 16_384
"""Event ids remembered per kind (about 3 MiB; ~14 min of vitals at 20 windows/s)."""


class EventIdLedger:
    """event id -> the first input digest seen under it, least recently seen dropped first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._digests: OrderedDict[str, str] = OrderedDict()

    def conflicts(self, event_id: str, digest: str) -> bool:
        """Record `digest` under `event_id`; True when the id was seen with another digest
        (a re-delivery of the same input is not a conflict)."""
        first = self._digests.setdefault(event_id, digest)
        self._digests.move_to_end(event_id)
        if len(self._digests) > self._capacity:
            self._digests.popitem(last=False)
        return first != digest

    def __len__(self) -> int:
        return len(self._digests)
