"""A third kind end to end: `echo` (toy_kind.py) registered beside scans and vitals, served by
the real worker code path against the real broker and the real Triton."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import toy_kind
import tritonclient.http as triton_http

from tests.support.harness import (
    Topics,
    TopicsWorker,
    collect,
    dicom_scans,
    keys,
    publish,
    vitals_window,
)
from worker.kinds import KINDS
from worker.settings import Settings
from worker.topics import topic_specs

pytestmark = pytest.mark.integration


class ToyWorker(TopicsWorker):
    """The harness's worker process, running toy_kind.py (registry kinds + echo)."""

    def argv(self) -> list[str]:
        return [sys.executable, toy_kind.__file__]


@pytest.fixture
def echo_model(settings: Settings) -> Iterator[str]:
    """A uniquely named echo model loaded into the session's Triton, unloaded afterwards."""
    name = f"echo_sum_{uuid.uuid4().hex[:8]}"
    client = triton_http.InferenceServerClient(settings.triton_http_url)
    client.load_model(name, config=json.dumps(toy_kind.triton_config(name)),
                      files={"file:1/model.onnx": toy_kind.onnx_model()})
    try:
        yield name
    finally:
        client.unload_model(name)
        client.close()


def test_nested_settings_configure_the_toy_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSTREAM_ECHO__TOPIC", "echo-x")
    monkeypatch.setenv("MEDSTREAM_ECHO__MAX_BATCH", "3")
    echo = toy_kind.ToySettings(_env_file=None).echo
    assert (echo.topic, echo.model, echo.max_batch, echo.max_bytes) == ("echo-x", "echo_sum", 3, 4096)
    specs = topic_specs(toy_kind.ToySettings(_env_file=None), (*KINDS, toy_kind.ECHO))
    assert [t.name for t in specs][-3:] == ["echo-x", "predictions", "deadletter"]


def test_a_registered_toy_kind_is_served_beside_scans_and_vitals(
        settings: Settings, topic_factory, tmp_path: Path, echo_model: str) -> None:
    topics = Topics.create(topic_factory)
    echo_topic = topic_factory("echo", 2)
    worker = ToyWorker(settings, topics, tmp_path / "worker", extra_env={
        "MEDSTREAM_ECHO__TOPIC": echo_topic, "MEDSTREAM_ECHO__MODEL": echo_model}).start()
    try:
        worker.wait_ready(60)
        vectors = {f"e-{i}": [i, 0.5, -1.0, 2 * i] for i in range(12)}
        poison = {b"bad-json": b"{not json", b"bad-shape": json.dumps(
            {"event_id": "bad-shape", "x": [1, 2]}).encode()}
        publish(settings, echo_topic, [(k.encode(), json.dumps({"event_id": k, "x": x}).encode())
                                       for k, x in vectors.items()] + list(poison.items()))
        (scan_uid, scan), = dicom_scans(1)
        publish(settings, topics.scans, [(b"study", scan)])
        publish(settings, topics.vitals, [(b"pseudo-1", vitals_window("v-1"))])

        good = {k.encode() for k in vectors} | {scan_uid.encode(), b"v-1"}

        def done(outputs: list) -> bool:
            return (keys(outputs, topics.predictions) >= good
                    and keys(outputs, topics.deadletter) >= set(poison))

        outputs = collect(settings, topics, done, 60, worker)
        predictions = {o.key: o.json() for o in outputs if o.topic == topics.predictions}
        assert set(predictions) == good
        for event_id, x in vectors.items():
            p = predictions[event_id.encode()]
            assert (p["kind"], p["model"], p["event_id"]) == ("echo", echo_model, event_id)
            assert p["outputs"]["sum"] == pytest.approx(sum(x), abs=1e-5)
        assert predictions[scan_uid.encode()]["kind"] == "scan"
        assert predictions[b"v-1"]["kind"] == "vitals"
        dead = {o.key: o.headers for o in outputs if o.topic == topics.deadletter}
        assert {k: h["error.type"] for k, h in dead.items()} == {
            b"bad-json": b"json_decode", b"bad-shape": b"shape"}
        assert dead[b"bad-json"]["source.topic"] == echo_topic.encode()
        assert worker.metric("medstream_predictions_total",
                             {"kind": "echo", "model": echo_model}) == len(vectors)
        assert worker.metric("medstream_messages_consumed_total", {"kind": "echo"}) == 14
    finally:
        worker.stop()
    assert worker.proc is not None and worker.proc.returncode == 0, worker.log_tail()
