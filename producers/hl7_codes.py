"""Vital-sign observation codes accepted in OBX-3 (units: producers/hl7_units.py).

LOINC codes (the US Core / HL7 vital-signs panel) and IEEE 11073 MDC codes as sent by bedside
monitors through IHE PCD-01 (matched by numeric code or by the MDC_ reference id).
"""

from __future__ import annotations

CODES: dict[str, str] = {
    # LOINC
    "8867-4": "hr",  # Heart rate
    "8889-8": "hr",  # Heart rate by pulse oximetry
    "59408-5": "spo2",  # Oxygen saturation in arterial blood by pulse oximetry
    "2708-6": "spo2",  # Oxygen saturation in arterial blood
    "9279-1": "rr",  # Respiratory rate
    "8480-6": "sbp",  # Systolic blood pressure
    "8462-4": "dbp",  # Diastolic blood pressure
    "8310-5": "temp",  # Body temperature
    "8331-1": "temp",  # Oral temperature
    "8328-7": "temp",  # Axillary temperature
    # IEEE 11073-10101 MDC (code and reference id)
    "147842": "hr",
    "MDC_ECG_HEART_RATE": "hr",
    "149530": "hr",
    "MDC_PULS_OXIM_PULS_RATE": "hr",
    "150456": "spo2",
    "MDC_PULS_OXIM_SAT_O2": "spo2",
    "151562": "rr",
    "MDC_RESP_RATE": "rr",
    "150021": "sbp",
    "MDC_PRESS_BLD_NONINV_SYS": "sbp",
    "150022": "dbp",
    "MDC_PRESS_BLD_NONINV_DIA": "dbp",
    "150017": "sbp",
    "MDC_PRESS_BLD_ART_SYS": "sbp",
    "150018": "dbp",
    "MDC_PRESS_BLD_ART_DIA": "dbp",
    "150364": "temp",
    "MDC_TEMP_BODY": "temp",
    "150344": "temp",
    "MDC_TEMP": "temp",
}


def channel_for(code: str, text: str) -> str | None:
    """Channel of an OBX-3 identifier (code or MDC reference id), or None when unknown."""
    return CODES.get(code.strip()) or CODES.get(text.strip().upper())
