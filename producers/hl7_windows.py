"""Per-patient sliding windows built from HL7 observations (in memory, bounded).

Observations are placed on a grid of `interval_s` slots counted from the Unix epoch; each
accepted message yields the window of `length` slots that ends at the message's latest
observation, so every acknowledged observation is already on Kafka inside a window.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime

from producers.hl7_parse import Observation, slot_of
from producers.vitals_windows import Row, Window, empty_row
from worker.contracts import CHANNELS


class PatientWindows:
    """Recent slots per patient; least recently updated patients go first past `max_patients`."""

    def __init__(self, *, length: int, interval_s: float, max_patients: int = 10_000) -> None:
        self.length, self.interval_s, self.max_patients = length, interval_s, max_patients
        self._slots: OrderedDict[tuple[str, str], dict[int, Row]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, patient_id: str, device_id: str, observations: Sequence[Observation]) -> Window:
        """Record observations and return the window ending at their latest slot."""
        key = (patient_id, device_id)
        with self._lock:
            slots = self._slots.pop(key, {})
            self._slots[key] = slots
            while len(self._slots) > self.max_patients:
                self._slots.popitem(last=False)
            for obs in observations:
                row = slots.setdefault(slot_of(obs.time, self.interval_s), empty_row())
                row[CHANNELS.index(obs.channel)] = obs.value
            end = max(slot_of(obs.time, self.interval_s) for obs in observations)
            newest = max(slots)
            for old in [s for s in slots if s <= newest - 2 * self.length]:
                del slots[old]
            first = end - self.length + 1
            values = [list(slots.get(s) or empty_row()) for s in range(first, end + 1)]
        start = datetime.fromtimestamp(first * self.interval_s, tz=UTC)
        return Window(patient_id, device_id, start, self.interval_s, values)
