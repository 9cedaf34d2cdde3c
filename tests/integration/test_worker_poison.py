"""Poison isolation: each kind of bad input is dead-lettered with its own reason; the rest is served."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.harness import (
    MAX_SCAN_BYTES,
    Topics,
    collect,
    dicom_scans,
    keys,
    publish,
    vitals_window,
)
from tests.support.harness import TopicsWorker as WorkerProcess
from worker.settings import Settings

pytestmark = pytest.mark.integration


def test_poison_messages_are_isolated(settings: Settings, topic_factory, tmp_path: Path) -> None:
    topics = Topics.create(topic_factory)
    worker = WorkerProcess(settings, topics, tmp_path / "worker").start()
    try:
        worker.wait_ready()
        good_scans = dicom_scans(3)
        bad_scans = {
            b"bad-dicom": b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00" + b"\xff" * 64,
            b"bad-oversize": good_scans[0][1] + b"\0" * MAX_SCAN_BYTES,
        }
        publish(settings, topics.scans, [(b"study", data) for _, data in good_scans[:2]]
                + list(bad_scans.items()) + [(b"study", good_scans[2][1])])
        bad_vitals = {
            b"bad-truncated": vitals_window("t")[:57],
            b"bad-shape": vitals_window("s", values=[[80, 97, 16]] * 10),
            b"bad-all-missing": vitals_window("n", values=[[None] * 6] * 60),
            b"bad-version": vitals_window("u", schema="medstream.vitals/v9"),
        }
        good_windows = [(f"v-{i}".encode(), vitals_window(f"v-{i}", seed=i)) for i in range(4)]
        publish(settings, topics.vitals, good_windows[:2] + list(bad_vitals.items()) + good_windows[2:])

        good = {uid.encode() for uid, _ in good_scans} | {k for k, _ in good_windows}
        bad = bad_scans | bad_vitals

        def done(outputs: list) -> bool:
            return keys(outputs, topics.predictions) >= good and keys(outputs, topics.deadletter) >= set(bad)

        outputs = collect(settings, topics, done, 45, worker)
        assert keys(outputs, topics.predictions) == good
        dead = {o.key: o for o in outputs if o.topic == topics.deadletter}
        assert set(dead) == set(bad)
        reasons = {key: o.headers["error.type"].decode() for key, o in dead.items()}
        assert reasons == {
            b"bad-dicom": "dicom_decode", b"bad-oversize": "oversize", b"bad-truncated": "json_decode",
            b"bad-shape": "shape", b"bad-all-missing": "all_missing", b"bad-version": "schema_version",
        }
        for key, o in dead.items():
            assert o.value == bad[key]  # the original bytes, unchanged
            assert o.headers["source.topic"].decode() in (topics.scans, topics.vitals)
            assert int(o.headers["source.offset"]) >= 0 and o.headers["error.message"]
            assert o.headers["worker.id"]
            assert o.headers["worker.lane"] == b"routine"  # lanes off: all is routine

        worker.assert_alive()
        assert worker.get("/health")[0] == 200 and worker.get("/ready")[0] == 200
        assert worker.metric("medstream_deadletters_total", {"kind": "vitals", "reason": "shape"}) == 1
        publish(settings, topics.vitals, [(b"after", vitals_window("after"))])
        after = collect(settings, topics, lambda o: b"after" in keys(o, topics.predictions), 30, worker)
        assert b"after" in keys(after, topics.predictions)
        assert "pseudo-" not in worker.log_tail(400)  # no patient pseudonyms in the log
    finally:
        worker.stop()
