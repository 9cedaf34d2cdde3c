"""Re-used event ids: every prediction carries its input's digest; a worker flags (and counts)
an event id it saw recently with other content, never a re-delivery of the same input."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support.fake_backend import FakeBackend
from worker.contracts import Row, VitalsWindow, encode_vitals, input_digest
from worker.identity import EventIdLedger
from worker.inference.protocol import ModelInfo
from worker.kinds.vitals import vitals_kind
from worker.metrics import Metrics
from worker.serving import BatchServer
from worker.settings import Settings


def test_the_ledger_tells_redeliveries_from_conflicts_and_forgets_the_oldest() -> None:
    ledger = EventIdLedger(capacity=2)
    assert not ledger.conflicts("a", "d1") and not ledger.conflicts("a", "d1")  # re-delivery
    assert ledger.conflicts("a", "d2") and not ledger.conflicts("a", "d1")  # the first is kept
    assert not ledger.conflicts("b", "d3")
    ledger.conflicts("a", "d1")  # "a" is now the most recent
    assert not ledger.conflicts("c", "d4") and len(ledger) == 2
    assert not ledger.conflicts("b", "other")  # "b" was forgotten
    with pytest.raises(ValueError):
        EventIdLedger(capacity=0)


class Sink:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, *, key: bytes | None, value: bytes, headers: Any = None) -> asyncio.Future:
        self.sent.append(json.loads(value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def window(hr: float) -> bytes:
    rows: list[Row] = [[hr, 97.0, 16.0, 120.0, 75.0, 37.0]] * 60
    return encode_vitals(VitalsWindow("same-id", "PSN-" + "0" * 32, "d",
                                      datetime(2026, 1, 1, tzinfo=UTC), 1.0, rows))


def test_same_event_id_with_other_content_is_flagged_and_counted() -> None:
    kind = vitals_kind(Settings(_env_file=None), {"vitals_lstm": ModelInfo("vitals_lstm", "1", 64)})
    preds, metrics = Sink(), Metrics.create()
    server = BatchServer(kind, FakeBackend(), metrics, predictions=preds, deadletter=Sink(),
                         worker_id="w")
    values = [window(70.0), window(70.0), window(140.0)]  # original, re-delivery, re-used id

    async def ack(_: Any) -> None:
        return None

    for offset, value in enumerate(values):
        message = SimpleNamespace(topic="vitals", partition=0, offset=offset, key=b"k", value=value,
                                  timestamp=1_700_000_000.0, headers=[])
        asyncio.run(server.serve([SimpleNamespace(message=message)], ack=ack))
    assert [p["input_digest"] for p in preds.sent] == [input_digest(v) for v in values]
    assert [p.get("event_id_conflict", False) for p in preds.sent] == [False, False, True]
    assert {p["event_id"] for p in preds.sent} == {"same-id"}  # the key stays the event id
    assert metrics.registry.get_sample_value("medstream_event_id_conflicts_total",
                                             {"kind": "vitals"}) == 1
