"""The keyed-state engine and the feed, with fakes: delivery order, ticks, rebalance, re-keying."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pydicom
from prometheus_client import CollectorRegistry
from pydicom.data import get_testdata_file

from tests.support.routing import declared_model
from worker.app import create_app
from worker.contracts import (
    TICK,
    InputRecord,
    Prediction,
    RiskEvent,
    StudyEvent,
    decode_study_result,
    encode_prediction,
    encode_study_event,
)
from worker.inference.protocol import ModelInfo
from worker.settings import Settings, StudySettings
from worker.studies.feed import Unattributed, from_deadletter, from_prediction
from worker.studies.keyed import KeyedState, run_batches
from worker.studies.machines import StudyMachine
from worker.studies.metrics import StudyMetrics
from worker.topics import topic_specs

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class Sink:
    """A topic whose deliveries the test resolves by hand; logs sends in order."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name, self.sent = log, name, []
        self.futures: list[asyncio.Future[Any]] = []

    async def send(self, **kwargs: Any) -> asyncio.Future[Any]:
        self.sent.append(kwargs)
        self.log.append(f"send:{self.name}")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda _: self.log.append(f"delivered:{self.name}"))
        self.futures.append(fut)
        return fut


def event(value: bytes, partition: int = 0, key: bytes | None = b"1.2") -> Any:
    return SimpleNamespace(message=SimpleNamespace(topic="study-events", partition=partition,
                                                   key=key, value=value))


def study_event(sop: str) -> bytes:
    return encode_study_event(StudyEvent("1.2", sop, "predicted", T0, "1.2.1", "CR", "pat",
                                         model="m", model_version="1",
                                         probabilities={"a": 0.25, "b": 0.75}))


def engine(log: list[str], clock: list[float]) -> tuple[KeyedState, Sink, Sink, dict]:
    store: dict[str, Any] = {}
    out, changelog = Sink(log, "studies"), Sink(log, "changelog")
    machine = StudyMachine(StudySettings(quiet_s=5, retain_s=60),
                           StudyMetrics.create(CollectorRegistry()))
    keyed = KeyedState(machine, store, out, changelog, clock=lambda: clock[0])
    keyed.assign([0, 1])
    return keyed, out, changelog, store


async def serve(keyed: KeyedState, events: list[Any], sinks: list[Sink], log: list[str]) -> None:
    async def ack(e: Any) -> None:
        log.append("ack")

    task = asyncio.create_task(keyed.serve(events, ack))
    while not task.done():
        await asyncio.sleep(0)
        for sink in sinks:
            for fut in sink.futures:
                if not fut.done():
                    fut.set_result(None)
                    await asyncio.sleep(0)
    await task


async def test_outputs_then_state_then_acks_and_ticks_answer_due_studies() -> None:
    log: list[str] = []
    clock = [T0.timestamp() + 1]
    keyed, out, changelog, store = engine(log, clock)
    await serve(keyed, [event(study_event("a")), event(study_event("b")), event(study_event("a"))],
                [out, changelog], log)
    assert log == ["send:changelog", "delivered:changelog", "ack", "ack", "ack"]  # one write
    assert changelog.sent[0]["partition"] == 0 and len(changelog.sent[0]["value"]["sops"]) == 2

    log.clear()
    clock[0] += 4
    await serve(keyed, [event(TICK, key=None)], [out, changelog], log)
    assert log == ["ack"]  # not quiet yet: no output, no state write
    clock[0] += 6
    await serve(keyed, [event(TICK, key=None), event(TICK, 1, key=None)], [out, changelog], log)
    assert log[1:] == ["send:studies", "delivered:studies", "send:changelog",
                       "delivered:changelog", "ack", "ack"]
    result = decode_study_result(out.sent[0]["value"])
    assert (result.revision, result.instances["predicted"]) == (1, 2)
    assert out.sent[0]["key"] == b"1.2" and store["1.2"]["revision"] == 1

    log.clear()
    clock[0] += 61  # retain_s after the result: dropped with a tombstone
    await serve(keyed, [event(TICK, key=None)], [out, changelog], log)
    assert changelog.sent[-1]["value"] is None and store == {}


async def test_malformed_state_event_is_dropped_and_acked() -> None:
    log: list[str] = []
    keyed, out, changelog, store = engine(log, [T0.timestamp()])
    wrong = study_event("a").replace(b'"outcome":"predicted"', b'"outcome":"lost"')
    await serve(keyed, [event(b"{not json"), event(wrong)], [out, changelog], log)
    assert log == ["ack", "ack"] and store == {}


async def test_rebalance_drops_the_keys_of_partitions_gone_elsewhere() -> None:
    log: list[str] = []
    keyed, out, changelog, store = engine(log, [T0.timestamp()])
    await serve(keyed, [event(study_event("a"), 0), event(study_event("b"), 1, key=b"1.3")],
                [out, changelog], log)
    keyed.assign([1])
    assert set(store) == {"1.3"} and keyed.active_since == {}


async def test_unexpected_failure_fail_stops_without_acking() -> None:
    acked, stopped = [], []

    class Stream:
        async def noack_take(self, max_: int, within: float):
            yield [event(study_event("a"))]
            yield [event(study_event("b"))]

        async def ack(self, e: Any) -> None:
            acked.append(e)

    async def broken(events: Any, ack: Any) -> None:
        raise RuntimeError("delivery failed")

    await run_batches(Stream(), broken, max_batch=10, within=0.1, name="test",
                      on_fatal=lambda: stopped.append(True))
    assert stopped == [True] and acked == []


def record(topic: str, value: bytes, headers: tuple = ()) -> InputRecord:
    return InputRecord(topic, 2, 7, b"k", value, T0.timestamp(), headers)


def test_feed_rekeys_scan_and_vitals_predictions() -> None:
    scan = Prediction("sop-1", "scan", "pat", "scan_cnn", "1", {
        "label": "b", "score": 0.75, "probabilities": {"a": 0.25, "b": 0.75}}, T0, T0, 1.0,
        extra={"study_uid": "1.2", "sop_uid": "sop-1", "series_uid": "1.2.1", "modality": "CT"})
    routed = from_prediction(record("predictions", encode_prediction(scan)))
    assert isinstance(routed, StudyEvent)
    assert (routed.study_uid, routed.series_uid, routed.modality, routed.probabilities) == (
        "1.2", "1.2.1", "CT", {"a": 0.25, "b": 0.75})
    vitals = Prediction("w-1", "vitals", "pat", "vitals_lstm", "1", {
        "risk": 0.8, "forecast": {}, "news2": {"score": 5}}, T0, T0, 1.0)
    risk = from_prediction(record("predictions", encode_prediction(vitals)))
    assert isinstance(risk, RiskEvent) and (risk.patient_id, risk.risk) == ("pat", 0.8)
    no_study = Prediction("sop-2", "scan", None, "scan_cnn", "1", {}, T0, T0, 1.0,
                          extra={"study_uid": None, "sop_uid": "sop-2"})
    assert from_prediction(record("predictions", encode_prediction(no_study))) == (
        Unattributed.MISSING_STUDY_UID)
    assert from_prediction(record("predictions", b"junk")) == Unattributed.UNDECODABLE


def test_feed_reads_a_dead_letter_scans_header() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    headers = (("error.type", b"pixel_decode"), ("source.topic", b"scans"),
               ("source.partition", b"1"), ("source.offset", b"9"))
    routed = from_deadletter(record("deadletter", buf.getvalue(), headers), {"scans"})
    assert isinstance(routed, StudyEvent)
    assert (routed.study_uid, routed.sop_uid, routed.modality, routed.outcome, routed.reason) == (
        str(ds.StudyInstanceUID), str(ds.SOPInstanceUID), "CT", "dead_lettered", "pixel_decode")
    assert from_deadletter(record("deadletter", b"\x00" * 200, headers), {"scans"}) == (
        Unattributed.UNDECODABLE)
    vitals = (("source.topic", b"vitals"),)
    assert from_deadletter(record("deadletter", b"{}", vitals), {"scans"}) == Unattributed.OTHER_KIND
    # a STAT scan's dead letter (docs/lanes.md) counts in its study too
    stat = (*headers[:1], ("source.topic", b"scans.stat"), *headers[2:])
    routed = from_deadletter(record("deadletter", buf.getvalue(), stat), {"scans", "scans.stat"})
    assert isinstance(routed, StudyEvent) and routed.outcome == "dead_lettered"


def test_enabled_studies_add_their_topics_agents_and_tables(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, kafka_bootstrap="127.0.0.1:9", web_port=6998,
                        state_dir=tmp_path, app_id="unit-studies",
                        studies=StudySettings(enabled=True))
    specs = {t.name: t.topic_configs for t in topic_specs(settings)}
    assert specs["studies"] == {"cleanup.policy": "compact"}
    assert {"study-events", "alert-events", "alerts"} <= set(specs)
    models = {  # what the shipped rules (triton_models/routing.yaml) route to, as Triton declares
        "chest_xray_pneumonia": declared_model("chest_xray_pneumonia",
                                               input_format_id="rgb150_tf_nhwc"),
        "brain_mri_tumour": declared_model("brain_mri_tumour", modalities="MR",
                                           body_parts="BRAIN,HEAD", input_format_id="rgb150_tf_nhwc",
                                           labels=("glioma", "meningioma", "no_tumour", "pituitary")),
        "vitals_lstm": ModelInfo("vitals_lstm", "1", 64)}
    app = create_app(settings, models)
    assert sorted(app.agents) == ["medstream.alerts", "medstream.scan", "medstream.studies",
                                  "medstream.studies-feed", "medstream.vitals"]
    assert set(app.tables) == {"studies", "alerts"}
    disabled = {t.name for t in topic_specs(Settings(_env_file=None))}
    assert disabled == {"scans", "scans.stat", "vitals", "vitals.stat", "predictions", "deadletter"}
