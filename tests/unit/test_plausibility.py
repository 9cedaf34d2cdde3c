"""The vitals contract refuses clinical nonsense: implausible values are masked and counted, a
channel that is mostly out of range refuses the window, times and intervals are bounded, ids
are encodable, clear patient ids are refused, and predictions say what was masked."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from producers.deid.pseudonym import Pseudonymizer
from worker.contracts import (
    CHANNELS,
    PLAUSIBLE,
    InputRecord,
    ScanEnvelope,
    VitalsWindow,
    decode_prediction,
    decode_scan_envelope,
    decode_vitals,
    encode_prediction,
    encode_scan_envelope,
    encode_vitals,
    is_pseudonym,
)
from worker.errors import PoisonMessage
from worker.inference.protocol import ModelInfo
from worker.kinds.vitals import prepare_vitals
from worker.postprocess import vitals_prediction
from worker.preprocess.vitals import screened_window, window_to_tensor
from worker.settings import Settings

NORMAL = [80.0, 97.0, 16.0, 120.0, 75.0, 37.0]
PSEUDONYM = "PSN-" + "0" * 32
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def reason(fn, *args, **kwargs) -> str:
    with pytest.raises(PoisonMessage) as info:
        fn(*args, **kwargs)
    return info.value.reason.value


def window(rows: list[list], **fields) -> bytes:
    body = json.loads(encode_vitals(VitalsWindow("w-1", PSEUDONYM, "mon-1", T0, 1.0, rows)))
    return json.dumps(body | fields).encode()


def test_ranges_cover_every_channel_and_normal_adult_values() -> None:
    assert list(PLAUSIBLE) == list(CHANNELS)
    assert all(lo <= v <= hi for v, (lo, hi) in zip(NORMAL, PLAUSIBLE.values()))


def test_a_spike_is_masked_counted_and_the_window_served() -> None:
    rows = [list(NORMAL) for _ in range(60)]
    rows[10][0], rows[20][5] = 1e308, 98.6  # an overflowed HR, a temperature in Fahrenheit
    tensor, implausible, missing = screened_window(rows)
    assert implausible == {"hr": 1, "spo2": 0, "rr": 0, "sbp": 0, "dbp": 0, "temp": 1}
    assert missing == implausible
    assert tensor[10, 6] == 1.0 and tensor[20, 11] == 1.0  # masked as missing
    assert tensor[10, 0] == 0.0 and np.isfinite(tensor).all()


@pytest.mark.parametrize(("rows", "channels"), [
    ([[1e308] * 6] * 60, "hr 60 of 60"),  # every cell absurd
    ([[-50.0, *NORMAL[1:]]] * 60, "hr 60 of 60"),  # a sign error
    ([[*NORMAL[:5], 98.6]] * 60, "temp 60 of 60"),  # Fahrenheit
    ([[80.0, 97.0, 16.0, 75.0, 120.0, 37.0]] * 60, "sbp 60 of 60"),  # sbp and dbp swapped
])
def test_a_channel_mostly_out_of_range_refuses_the_window(rows: list, channels: str) -> None:
    with pytest.raises(PoisonMessage) as info:
        screened_window(rows)
    assert info.value.reason.value == "implausible" and channels in str(info.value)


def test_the_threshold_is_more_than_half_of_a_channels_present_values() -> None:
    rows = [list(NORMAL) for _ in range(10)]
    for row in rows[:5]:
        row[2] = 500.0
    assert screened_window(rows)[1]["rr"] == 5  # exactly half: masked, served
    rows[5][2] = 500.0
    assert reason(screened_window, rows) == "implausible"
    only_hr = [[70.0] + [None] * 5, [-1.0] + [None] * 5, [72.0] + [None] * 5]
    assert screened_window(only_hr)[1]["hr"] == 1  # absent channels do not count


def test_crossed_blood_pressure_masks_both() -> None:
    rows = [list(NORMAL) for _ in range(10)]
    rows[3][3], rows[3][4] = 80.0, 80.0
    _, implausible, _ = screened_window(rows)
    assert (implausible["sbp"], implausible["dbp"]) == (1, 1)


def test_training_preprocessing_is_unchanged() -> None:
    rows = [[1e9, *NORMAL[1:]]]
    assert window_to_tensor(rows)[-1, 0] == 10.0  # clipped, not masked: training's behaviour


@pytest.mark.parametrize(("fields", "expected"), [
    ({"interval_s": 1e300}, "schema"),
    ({"interval_s": 3601}, "schema"),
    ({"interval_s": 0}, "schema"),
    ({"start": "9999-12-31T23:59:30Z"}, "schema"),
    ({"start": "9999-12-31T23:59:30-05:00"}, "schema"),  # overflows on the way to UTC
    ({"start": "0001-01-01T00:00:00+01:00"}, "schema"),
    ({"start": "1969-12-31T23:59:59Z"}, "schema"),
    ({"start": "2099-12-31T23:59:30Z"}, "schema"),  # its last sample is after 2100
    ({"event_id": "p-\ud800"}, "schema"),
    ({"patient_id": "\udfff"}, "schema"),
    ({"device_id": "mon\x00"}, "schema"),
    ({"event_id": "line\nbreak"}, "schema"),
])
def test_times_intervals_and_ids_are_bounded(fields: dict, expected: str) -> None:
    assert reason(decode_vitals, window([NORMAL] * 60, **fields)) == expected


def test_bounds_keep_real_windows() -> None:
    decoded = decode_vitals(window([NORMAL] * 60, interval_s=3600, start="2026-06-01T12:00:00+02:00"))
    assert decoded.end_time == datetime(2026, 6, 3, 21, tzinfo=UTC)  # 10:00 UTC + 59 h
    assert decode_vitals(window([NORMAL] * 2, event_id="ünïcode-é")).event_id == "ünïcode-é"


def test_a_lone_surrogate_in_a_scan_envelope_is_refused() -> None:
    envelope = encode_scan_envelope(ScanEnvelope("s-\ud800", "a.dcm"))
    assert reason(decode_scan_envelope, envelope) == "schema"


def test_clear_patient_ids_are_refused_while_the_policy_is_on() -> None:
    assert not Settings(_env_file=None).require_deidentified  # off by default: docs/worker.md
    clear = window([NORMAL] * 60, patient_id="MRN-12345")
    assert reason(prepare_vitals, clear, require_deidentified=True) == "not_deidentified"
    meta, _ = prepare_vitals(clear, require_deidentified=False)
    assert meta.window.patient_id == "MRN-12345"
    assert prepare_vitals(window([NORMAL] * 60), require_deidentified=True)[0].window.patient_id == PSEUDONYM
    # a malformed window is reported as such, whatever its patient id
    assert reason(prepare_vitals, window([[-50.0, *NORMAL[1:]]] * 60, patient_id="MRN-1"),
                  require_deidentified=True) == "implausible"


def test_the_producers_pseudonyms_are_what_the_worker_accepts() -> None:
    pseudonym = Pseudonymizer(b"k" * 32).patient("MRN-12345")
    assert is_pseudonym(pseudonym)
    assert not any(map(is_pseudonym, ["MRN-12345", "PSN-" + "A" * 32, "PSN-" + "0" * 31, "", pseudonym + "0"]))


def test_predictions_say_what_was_masked_and_carry_the_input_digest() -> None:
    rows = [list(NORMAL) for _ in range(60)]
    rows[0][0] = -50.0
    meta, _ = prepare_vitals(window(rows), require_deidentified=True)
    pred = vitals_prediction(meta, {"risk": np.array([0.2]), "forecast": np.zeros(6)},
                             InputRecord("v", 0, 0, None, b"", 0.0), ModelInfo("vitals_lstm", "1", 64), T0)
    pred = replace(pred, input_digest="sha256:" + "ab" * 32)
    body = json.loads(encode_prediction(pred))
    assert body["quality"]["implausible"]["hr"] == 1 and body["input_digest"] == pred.input_digest
    assert "event_id_conflict" not in body
    assert decode_prediction(encode_prediction(pred)) == pred
