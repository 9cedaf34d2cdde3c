"""OBX-6 units -> each vital-sign channel's canonical unit: one explicit table per channel.

A unit is looked up by OBX-6.1 (identifier), else OBX-6.2 (text): a UCUM code, an IEEE 11073
MDC dimension (numeric code or MDC_DIM_ reference id) or one of a few common spellings
(`bpm`, `mmHg`, `degC`). Matching ignores case (UCUM's case-insensitive form is accepted) and
UCUM annotations (`{beats}/min` is `/min`). A unit the channel's table does not list, and a
missing unit, raise UnitError: the listener answers AE naming it. A value is never guessed
into a unit from its size (every channel has a second unit in real use: Hz, fraction, kPa,
degF, K), because a confident wrong value is worse than none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

CANONICAL: dict[str, str] = {
    "hr": "/min", "spo2": "%", "rr": "/min", "sbp": "mm[Hg]", "dbp": "mm[Hg]", "temp": "Cel",
}
"""The unit each channel's values are published in (UCUM)."""

MMHG_PER_KPA = 760.0 / 101.325


def _same(value: float) -> float:
    return value


def _per_second(value: float) -> float:
    return value * 60.0


def _fraction(value: float) -> float:
    return value * 100.0


def _kpa(value: float) -> float:
    return value * MMHG_PER_KPA


def _fahrenheit(value: float) -> float:
    return (value - 32.0) * 5.0 / 9.0


def _kelvin(value: float) -> float:
    return value - 273.15


Conversion = Callable[[float], float]
# rates: UCUM, MDC_DIM_HZ (264640); beats (264864) and breaths (264928) per minute per channel
_PER_SECOND: dict[str, Conversion] = dict.fromkeys(
    ("/s", "1/s", "s-1", "hz", "264640", "mdc_dim_hz"), _per_second)
_PER_MINUTE: dict[str, Conversion] = dict.fromkeys(("/min", "1/min", "min-1"), _same)
_PRESSURE: dict[str, Conversion] = {
    **dict.fromkeys(("mm[hg]", "mmhg", "266016", "mdc_dim_mmhg"), _same),
    **dict.fromkeys(("kpa", "265987", "mdc_dim_kilo_pascal"), _kpa),
}

UNITS: dict[str, dict[str, Conversion]] = {
    "hr": {**_PER_MINUTE, **_PER_SECOND,
           **dict.fromkeys(("bpm", "beats/min", "264864", "mdc_dim_beat_per_min"), _same)},
    "rr": {**_PER_MINUTE, **_PER_SECOND,
           **dict.fromkeys(("breaths/min", "264928", "mdc_dim_resp_per_min"), _same)},
    "spo2": {**dict.fromkeys(("%", "262688", "mdc_dim_percent"), _same),
             **dict.fromkeys(("1", "262656", "mdc_dim_dimless"), _fraction)},
    "sbp": _PRESSURE,
    "dbp": _PRESSURE,
    "temp": {**dict.fromkeys(("cel", "degc", "°c", "268192", "mdc_dim_degc"), _same),
             **dict.fromkeys(("[degf]", "degf", "°f", "266560", "mdc_dim_fahr"), _fahrenheit),
             **dict.fromkeys(("k", "266528", "mdc_dim_kelvin"), _kelvin)},
}
"""channel -> normalised unit -> conversion to the channel's canonical unit."""

_ANNOTATION = re.compile(r"\{[^{}]*\}")


class UnitError(ValueError):
    """No usable OBX-6 unit for the channel; `reason` is `missing_unit` or `unknown_unit`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def normalise_unit(unit: str) -> str:
    """Lower case, without UCUM annotations or blanks; a bare annotation is the unit `1`."""
    text = unit.strip()
    stripped = _ANNOTATION.sub("", text).replace(" ", "").lower()
    return stripped or ("1" if text else "")


def to_canonical(channel: str, units: Sequence[str], value: float) -> float:
    """`value` given in the OBX-6 unit components `units`, in the channel's canonical unit."""
    table = UNITS[channel]
    given = [u.strip() for u in units if u.strip()]
    if not given:
        raise UnitError("missing_unit", f"no unit (OBX-6) for {channel}; send {CANONICAL[channel]}")
    for unit in given:
        conversion = table.get(normalise_unit(unit))
        if conversion is not None:
            return conversion(value)
    raise UnitError("unknown_unit",
                    f"unit {given[0][:20]!r} is not accepted for {channel} (e.g. {CANONICAL[channel]})")
