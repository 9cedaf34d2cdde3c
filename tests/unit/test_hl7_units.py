"""producers.hl7_units: the per-channel OBX-6 unit table (pure)."""

from __future__ import annotations

import pytest

from producers.hl7_units import CANONICAL, UNITS, UnitError, normalise_unit, to_canonical


@pytest.mark.parametrize("channel", sorted(CANONICAL))
def test_each_channel_accepts_its_canonical_unit_unchanged(channel: str) -> None:
    assert to_canonical(channel, [CANONICAL[channel]], 42.5) == 42.5
    assert set(UNITS) == set(CANONICAL)


@pytest.mark.parametrize(
    ("channel", "units", "value", "expected"),
    [
        ("hr", ["Hz"], 1.5, 90.0),
        ("hr", ["264864", "MDC_DIM_BEAT_PER_MIN"], 72.0, 72.0),
        ("hr", ["{beats}/min"], 72.0, 72.0),
        ("hr", ["BPM"], 72.0, 72.0),
        ("rr", ["/s"], 0.25, 15.0),
        ("rr", ["{breaths}/min"], 15.0, 15.0),
        ("spo2", ["1"], 0.97, 97.0),
        ("spo2", ["{fraction}"], 0.97, 97.0),  # a bare UCUM annotation is the unit 1
        ("spo2", ["262688"], 97.0, 97.0),
        ("sbp", ["KPA"], 16.0, 120.01),
        ("dbp", ["mmHg"], 80.0, 80.0),
        ("temp", ["[degF]"], 98.6, 37.0),
        ("temp", ["K"], 310.15, 37.0),
        ("temp", ["", "MDC_DIM_DEGC"], 37.0, 37.0),  # OBX-6.2 when OBX-6.1 is empty
        ("temp", ["x-unknown", "Cel"], 37.0, 37.0),  # OBX-6.2 when OBX-6.1 is not listed
    ],
)
def test_conversions(channel: str, units: list[str], value: float, expected: float) -> None:
    assert to_canonical(channel, units, value) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(
    ("channel", "units", "reason"),
    [
        ("hr", [], "missing_unit"),
        ("hr", ["", " "], "missing_unit"),
        ("temp", ["C"], "unknown_unit"),  # UCUM C is the coulomb; Celsius is Cel
        ("hr", ["%"], "unknown_unit"),  # a unit of another channel
        ("rr", ["MDC_DIM_BEAT_PER_MIN"], "unknown_unit"),  # beats are not breaths
        ("spo2", ["mmol/L"], "unknown_unit"),
    ],
)
def test_missing_and_foreign_units_are_refused(channel: str, units: list[str], reason: str) -> None:
    with pytest.raises(UnitError) as info:
        to_canonical(channel, units, 1.0)
    assert info.value.reason == reason and channel in str(info.value)


def test_normalise_unit() -> None:
    assert normalise_unit(" {beats}/MIN ") == "/min"
    assert normalise_unit("{score}") == "1" and normalise_unit("") == ""
    assert normalise_unit("mm [Hg]") == "mm[hg]"
