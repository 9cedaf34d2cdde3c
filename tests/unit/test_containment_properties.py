"""Per-record containment at the batch-loop level: whatever the bytes, `BatchServer.serve`
returns, acks every input, and every input ends as exactly one prediction or dead letter, with
sinks that refuse oversize records the way Kafka does (hypothesis; fake backend and sinks)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from tests.support.batch_loop import LIMIT, KafkaSink, assert_one_output_each, serve_batch
from tests.support.routing import declared_model
from worker.contracts import (
    ScanEnvelope,
    VitalsWindow,
    encode_scan_envelope,
    encode_vitals,
)
from worker.inference.protocol import ModelInfo
from worker.kinds.scan import scan_kind
from worker.kinds.vitals import vitals_kind
from worker.metrics import Metrics
from worker.settings import Settings

SETTINGS = Settings(_env_file=None, require_deidentified=True)  # vitals: pseudonyms only
VITALS = vitals_kind(SETTINGS, {"vitals_lstm": ModelInfo("vitals_lstm", "1", 64)})
SCAN = scan_kind(  # every image routed to a declared model (tests/unit/data/fuzz_routing.yaml)
    Settings(_env_file=None, routing={"rules": Path(__file__).with_name("data") / "fuzz_routing.yaml"}),
    {"fuzz_gray": declared_model("fuzz_gray", modalities="CT,MR,NM,OT,CR,DX,US", body_parts=""),
     "fuzz_rgb": declared_model("fuzz_rgb", modalities="MR", body_parts="BRAIN,HEAD",
                                input_format_id="rgb150_tf_nhwc")})
CT = Path(get_testdata_file("CT_small.dcm")).read_bytes()
PSEUDONYM = "PSN-" + "a" * 32


def outcomes(preds: KafkaSink, dead: KafkaSink) -> None:
    """Label the example for `--hypothesis-show-statistics` (which paths the inputs reach)."""
    for _ in preds.delivered:
        event("prediction")
    for _, _, headers in dead.delivered:
        event(headers["error.type"].decode() + (" (bounded)" if "original.value.sha256" in headers else ""))


# -- inputs ----------------------------------------------------------------------------------

JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
JSON_ANY = st.recursive(JSON_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=8), inner, max_size=6)),
    max_leaves=30)
HOSTILE_IDS = st.sampled_from(["p-\ud800", "e\x00", "\udfff", "ok\n", "x" * 300, " ", PSEUDONYM,
                               "PSN-" + "A" * 32, "1.2.840.1"])
HOSTILE = {
    "event_id": HOSTILE_IDS, "patient_id": HOSTILE_IDS, "device_id": HOSTILE_IDS,
    "interval_s": st.sampled_from([1e300, 0, -1, 3600, 3601, float("nan"), 1e-9]),
    "start": st.sampled_from(["9999-12-31T23:59:30Z", "0001-01-01T00:00:00+01:00",
                              "1969-12-31T23:59:59Z", "2099-12-31T23:00:00Z", "now"]),
    "values": st.sampled_from([[[1e308] * 6] * 60, [[-50, 97, 16, 120, 75, 37]] * 60,
                               [[75, 97, 16, 120, 130, 37]] * 10, [[None] * 6] * 3]),
    "pad": st.integers(0, 5000).map(lambda n: "x" * n),  # around the size limits
}


def good_window(event_id: str = "w", patient_id: str = PSEUDONYM, hr: float = 80.0) -> dict:
    rows = [[hr, 97.0, 16.0, 120.0, 75.0, 37.0]] * 30
    return json.loads(encode_vitals(VitalsWindow(event_id, patient_id, "d", datetime(2026, 1, 1, tzinfo=UTC),
                                                 1.0, rows)))


@st.composite
def vitals_values(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=6000))
    if choice == 1:
        return json.dumps(draw(JSON_ANY), allow_nan=True).encode()
    body = good_window(event_id=f"w-{draw(st.integers(0, 3))}")
    fields = draw(st.sets(st.sampled_from(sorted(HOSTILE)), max_size=3))
    body |= {name: draw(HOSTILE[name]) for name in fields}
    if choice == 3:
        body |= draw(st.dictionaries(st.sampled_from(sorted(body)), JSON_ANY, max_size=2))
    return json.dumps(body, allow_nan=True).encode()


@st.composite
def scan_values(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=6000))
    if choice == 1:
        return CT if draw(st.booleans()) else CT[:draw(st.integers(0, len(CT)))]
    envelope = json.loads(encode_scan_envelope(ScanEnvelope(draw(HOSTILE_IDS), "/x.dcm")))
    return json.dumps(envelope | draw(st.dictionaries(st.sampled_from(sorted(envelope)), JSON_ANY,
                                                      max_size=2))).encode()


PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                         HealthCheck.data_too_large])


@PROPERTY
@given(st.lists(vitals_values(), min_size=1, max_size=8), st.booleans())
def test_vitals_batches_always_end_in_one_output_per_input(values: list[bytes], broker: bool) -> None:
    # the sink refuses some records that pass the server's own limit: they are sent again bounded
    preds, dead, acked = serve_batch(VITALS, values, sink_max=LIMIT - 1000, broker=broker)
    assert_one_output_each(values, preds, dead, acked)
    outcomes(preds, dead)


@PROPERTY
@given(st.lists(scan_values(), min_size=1, max_size=4), st.booleans())
def test_scan_batches_always_end_in_one_output_per_input(values: list[bytes], broker: bool) -> None:
    preds, dead, acked = serve_batch(SCAN, values, sink_max=LIMIT - 1000, broker=broker)
    assert_one_output_each(values, preds, dead, acked)
    outcomes(preds, dead)


# -- the reproductions of issue 12, one each -------------------------------------------------

def test_each_reproduction_is_its_records_dead_letter_and_the_rest_is_served() -> None:
    good = good_window("good")
    hostile = {
        "interval_s": good_window("a") | {"interval_s": 1e300},
        "start": good_window("b") | {"start": "9999-12-31T23:59:30Z"},
        "event_id": good_window("p-\ud800"),
        "implausible": good_window("c", hr=-50.0),
        "clear_id": good_window("d", patient_id="MRN-12345"),
    }
    values = [json.dumps(v).encode() for v in (good, *hostile.values(), good | {"event_id": "good2"})]
    values.append(b"x" * 50_000)  # over the producer's limit: its dead letter is bounded
    metrics = Metrics.create()
    preds, dead, acked = serve_batch(VITALS, values, metrics=metrics)
    assert_one_output_each(values, preds, dead, acked)
    assert sorted(json.loads(v)["event_id"] for _, v, _ in preds.delivered) == ["good", "good2"]
    reasons = {int(h["source.offset"]): h["error.type"].decode() for _, _, h in dead.delivered}
    assert reasons == {1: "schema", 2: "schema", 3: "schema", 4: "implausible",
                       5: "not_deidentified", 7: "json_decode"}
    assert metrics.registry.get_sample_value("medstream_deadletters_bounded_total",
                                             {"kind": "vitals"}) == 1


def test_a_lone_surrogate_in_a_scan_envelope_is_a_schema_dead_letter() -> None:
    value = encode_scan_envelope(ScanEnvelope("s-\ud800", "/x"))
    _, dead, acked = serve_batch(SCAN, [value])
    assert acked == [0] and dead.delivered[0][2]["error.type"] == b"schema"
