"""Hostile input against the worker's decoders (hypothesis): 1,500+ generated malformed inputs.

Every input goes through what the worker runs per record - the size check, then the kind's
`prepare` (worker.contracts decoders + worker.preprocess) - and must end either as a
PoisonMessage with a reason slug or, for a mutation that happens to stay valid, as a
well-formed finite tensor. Nothing else may escape (the pipeline would still dead-letter it,
as "decode_error", but that means a decoder bug). Each case is bounded in time (a hang guard,
not a benchmark) and in traced memory. The summary line prints the counts.

Profiles: `ci` (default, derandomized, 120 examples per strategy) and `deep`
(HYPOTHESIS_PROFILE=deep: random, 2,000 per strategy).
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.uid import (
    HEVCM10P51,
    HTJ2KLossless,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from tests.support.routing import declared_model
from worker.contracts import (
    ScanEnvelope,
    VitalsWindow,
    check_size,
    encode_scan_envelope,
    encode_vitals,
)
from worker.errors import PoisonMessage
from worker.inference.protocol import ModelInfo
from worker.kinds.scan import scan_kind
from worker.kinds.vitals import vitals_kind
from worker.pipeline import Routed, Skipped
from worker.preprocess.scan import MAX_DECODED_BYTES
from worker.settings import Settings

settings.register_profile("ci", max_examples=120, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("deep", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CASE_LIMIT_S = 20  # hang guard per input
PEAK_LIMIT_BYTES = 2 * MAX_DECODED_BYTES
SETTINGS = Settings(_env_file=None,
                    routing={"rules": Path(__file__).with_name("data") / "fuzz_routing.yaml"})
FUZZ_MODELS = {"fuzz_gray": declared_model("fuzz_gray", modalities="CT,MR,NM,OT,CR,DX,US", body_parts=""),
               "fuzz_rgb": declared_model("fuzz_rgb", modalities="MR", body_parts="BRAIN,HEAD",
                                          input_format_id="rgb150_tf_nhwc")}
SCAN = scan_kind(SETTINGS, FUZZ_MODELS)  # every sample routed: hostile pixels reach a decoder
VITALS = vitals_kind(SETTINGS, {"vitals_lstm": ModelInfo("vitals_lstm", "1", 64)})
DICOM_FILES = ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "SC_rgb.dcm",
               "emri_small.dcm")
REAL = {name: Path(get_testdata_file(name)).read_bytes() for name in DICOM_FILES}


def _pixel_end(data: bytes) -> int:
    """Offset just past the pixel data value (later bytes are trailing elements/delimiters)."""
    ds = pydicom.dcmread(io.BytesIO(data), defer_size=1)
    return ds.get_item("PixelData").file_tell + len(ds.PixelData)


PIXEL_END = {name: _pixel_end(data) for name, data in REAL.items()}
TALLY: Counter[str] = Counter()
WORST = {"seconds": 0.0, "peak_mib": 0.0}


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    yield
    total = sum(TALLY.values())
    print(f"\n[fuzz] {total} hostile inputs: {dict(TALLY.most_common())}; slowest "
          f"{WORST['seconds']:.2f} s, peak traced memory {WORST['peak_mib']:.1f} MiB")


def _alarm(signum: int, frame: object) -> None:
    raise TimeoutError(f"a decoder ran past the {CASE_LIMIT_S} s hang guard")


def hostile(kind, value: bytes, *, expect_poison: bool = False) -> str:
    """Run one input like the pipeline does; returns the outcome ("served" or the reason)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_LIMIT_S)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        check_size(value, kind.max_bytes)
        prepared = kind.prepare(value)
        if isinstance(prepared, Skipped):  # a mutated header no rule routes: never decoded
            tensor, outcome = None, f"skipped_{prepared.reason}"
        else:
            model, tensor = (prepared.model, prepared.tensor) if isinstance(prepared, Routed) \
                else ("vitals_lstm", prepared[1])
            outcome = "served"
    except PoisonMessage as exc:
        assert exc.reason and exc.reason.isidentifier() and str(exc), exc
        outcome = exc.reason
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    WORST["seconds"] = max(WORST["seconds"], time.perf_counter() - started)
    WORST["peak_mib"] = max(WORST["peak_mib"], peak / 2**20)
    assert peak < PEAK_LIMIT_BYTES, f"{peak} bytes traced for one {len(value)}-byte input"
    if outcome == "served":
        assert not expect_poison, "a malformed input was served"
        shape = FUZZ_MODELS[model].input_dims["image"] if kind is SCAN else (60, 12)
        assert tensor.dtype == np.float32 and tensor.shape == shape
        assert np.isfinite(tensor).all()
    TALLY[f"{kind.name}:{outcome}"] += 1
    return outcome


def dicom_bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


# -- bytes ---------------------------------------------------------------------------------

@given(st.binary(max_size=4096))
def test_random_bytes_are_poison_for_both_kinds(value: bytes) -> None:
    hostile(SCAN, value, expect_poison=True)
    hostile(VITALS, value, expect_poison=True)


@given(st.sampled_from(DICOM_FILES), st.data())
def test_truncated_real_dicoms_are_poison(name: str, data: st.DataObject) -> None:
    real = REAL[name]
    cut = data.draw(st.integers(0, len(real) - 1))
    # A cut after the pixel data only drops trailing elements: that file may still be served.
    hostile(SCAN, real[:cut], expect_poison=cut < PIXEL_END[name])


@given(st.sampled_from(DICOM_FILES), st.lists(st.tuples(st.integers(0, 2**31), st.integers(1, 255)),
                                              min_size=1, max_size=16))
@example(name="MR_small_RLE.dcm", flips=[(1024, 1)])  # a VR byte flipped: NotImplementedError
def test_bit_flipped_real_dicoms_are_poison_or_a_valid_tensor(name: str, flips) -> None:
    value = bytearray(REAL[name])
    for position, mask in flips:
        # Most flips land in the header (first 2 KiB), where they break structure.
        index = position % 2048 if position % 3 else position % len(value)
        value[index] ^= mask
    hostile(SCAN, bytes(value))


# -- DICOM header mutations ----------------------------------------------------------------

PLACEHOLDER = "86420135"  # an 8-character IS value, unique in the test files
DIMENSION_TAGS = ("Rows", "Columns", "BitsAllocated", "BitsStored", "SamplesPerPixel",
                  "PixelRepresentation", "PlanarConfiguration", "HighBit")


@given(st.sampled_from(DICOM_FILES),
       st.dictionaries(st.sampled_from(DIMENSION_TAGS), st.integers(0, 65535), min_size=1, max_size=4),
       st.one_of(st.none(), st.integers(-1, 2**31 - 1).map(str), st.text(max_size=8)))
def test_absurd_dimensions_are_refused_or_fail_cleanly(name: str, changes: dict, frames) -> None:
    ds = pydicom.dcmread(io.BytesIO(REAL[name]))
    for tag, value in changes.items():
        setattr(ds, tag, value)
    if frames is None:
        hostile(SCAN, dicom_bytes(ds))
        return
    # pydicom refuses to set an invalid IS value: write a placeholder, then patch the bytes.
    ds.NumberOfFrames = PLACEHOLDER
    raw = frames.encode("utf-8", "replace")[:8].ljust(8)
    hostile(SCAN, dicom_bytes(ds).replace(PLACEHOLDER.encode(), raw, 1))


@given(st.sampled_from(DICOM_FILES), st.sampled_from(["PixelData", "SOPInstanceUID", "Rows",
                                                      "BitsAllocated", "PhotometricInterpretation"]))
def test_missing_elements_are_poison_or_served(name: str, tag: str) -> None:
    ds = pydicom.dcmread(io.BytesIO(REAL[name]))
    delattr(ds, tag)
    outcome = hostile(SCAN, dicom_bytes(ds), expect_poison=tag in ("PixelData", "SOPInstanceUID"))
    if tag == "PixelData":
        assert outcome == "no_pixel_data"


@given(st.sampled_from([JPEGBaseline8Bit, JPEGLSLossless, JPEG2000Lossless, RLELossless, HTJ2KLossless,
                        HEVCM10P51]),
       st.lists(st.binary(min_size=2, max_size=512), min_size=1, max_size=3),
       st.integers(1, 8192), st.integers(1, 8192))
def test_compressed_syntaxes_with_garbage_frames_are_poison(syntax, frames: list[bytes],
                                                           rows: int, cols: int) -> None:
    ds = pydicom.dcmread(io.BytesIO(REAL["CT_small.dcm"]))
    ds.file_meta.TransferSyntaxUID = syntax
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = len(frames)
    ds.PixelData = pydicom.encaps.encapsulate([f + b"\0" * (len(f) % 2) for f in frames])
    ds["PixelData"].VR = "OB"
    hostile(SCAN, dicom_bytes(ds), expect_poison=True)


# -- JSON ------------------------------------------------------------------------------------

JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40))
JSON_ANY = st.recursive(JSON_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=8), st.dictionaries(st.text(max_size=12), inner, max_size=8)),
    max_leaves=60)
FIELDS = ("schema", "event_id", "patient_id", "device_id", "start", "interval_s", "channels",
          "values")


def good_window() -> dict:
    window = VitalsWindow("e-1", "PSN-" + "1" * 32, "d-1", datetime(2026, 1, 1, tzinfo=UTC), 1.0,
                          [[80, 97, 16, 120, 75, 37.0]] * 60)
    return json.loads(encode_vitals(window))


@given(st.dictionaries(st.sampled_from(FIELDS), JSON_ANY, min_size=1, max_size=4))
@example(wrong={"interval_s": 2})  # an int interval is valid
def test_vitals_with_wrong_types_are_poison(wrong: dict) -> None:
    body = {**good_window(), **wrong}
    value = json.dumps(body, allow_nan=True).encode()
    hostile(VITALS, value, expect_poison=_wrong_type(wrong))


FIELD_TYPES = {**dict.fromkeys(FIELDS[:5], str),  # schema, ids, start
               "interval_s": (int, float), "channels": list, "values": list}


def _wrong_type(wrong: dict) -> bool:
    """A field of the wrong JSON type is always poison; one of the right type may still be
    valid (another id, a positive interval) and may be served."""
    return any(isinstance(v, bool) or not isinstance(v, FIELD_TYPES[k]) for k, v in wrong.items())


@given(st.integers(1, 20_000), st.sampled_from([None, float("nan"), float("inf"), -1e308, 1e308]),
       st.floats(0, 1))
def test_huge_and_non_finite_windows_are_bounded(rows: int, filler, fraction: float) -> None:
    rng = np.random.default_rng(rows)
    values: list[list] = (np.array([80, 97, 16, 120, 75, 37.0]) + rng.normal(0, 1, (rows, 6))).tolist()
    for r, c in zip(rng.integers(0, rows, int(rows * 6 * fraction)), rng.integers(0, 6, rows * 6)):
        values[int(r)][int(c)] = filler
    body = {**good_window(), "values": values}
    hostile(VITALS, json.dumps(body, allow_nan=True).encode())


@given(st.integers(1, 200_000), st.sampled_from(["[", "{\"a\":", "[{\"values\":"]))
def test_deeply_nested_json_is_poison(depth: int, opener: str) -> None:
    closer = {"[": "]", "{\"a\":": "}", "[{\"values\":": "}]"}[opener]
    value = (opener * depth + "1" + closer * depth).encode()
    hostile(VITALS, value, expect_poison=True)
    hostile(SCAN, b"{" + value[1:], expect_poison=True)


@given(st.binary(min_size=1, max_size=64))
def test_invalid_utf8_in_json_is_poison(junk: bytes) -> None:
    head = json.dumps(good_window()).encode()[:-1]
    value = head + b', "device_id": "' + b"\xff\xfe" + junk + b'"}'
    assert hostile(VITALS, value, expect_poison=True) in ("json_decode", "schema")
    envelope = encode_scan_envelope(ScanEnvelope("@", "x")).replace(b'"@"', b'"\xc3\x28' + junk + b'"')
    hostile(SCAN, envelope, expect_poison=True)


@given(st.sampled_from([SCAN, VITALS]), st.integers(1, 4096))
def test_oversized_messages_are_refused_before_decoding(kind, extra: int) -> None:
    value = b"{" + b" " * (kind.max_bytes + extra - 2) + b"}"
    assert hostile(kind, value, expect_poison=True) == "oversize"


@pytest.mark.parametrize("name", DICOM_FILES)
def test_decompression_bomb_is_refused_from_the_header(name: str) -> None:
    ds = pydicom.dcmread(io.BytesIO(REAL[name]))
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = "1000"
    assert hostile(SCAN, dicom_bytes(ds), expect_poison=True) == "oversize"


def test_real_files_are_served() -> None:
    """The control: the unmutated files decode (so the poison above is not a broken decoder)."""
    for name in DICOM_FILES:
        assert hostile(SCAN, REAL[name]) == "served", name
    assert hostile(VITALS, json.dumps(good_window()).encode()) == "served"

