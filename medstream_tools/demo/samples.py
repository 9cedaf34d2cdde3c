"""Sample data of `medstream demo`: pydicom test scans and a heart-rate series from real ECG."""

from __future__ import annotations

import io
from datetime import datetime

import numpy as np
import pydicom

from producers.scan_events import encode
from worker.contracts import CHANNELS, Row, VitalsWindow, encode_vitals
from worker.preprocess.vitals import WINDOW_LEN

# What the shipped routing rules make of them: skipped (CT; MR without a body part), the brain
# tumour model (MR of the head), the chest X-ray model (a PA chest radiograph)
SAMPLE_SCANS = ("CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "RG1_UNCR.dcm")
# The full demo publishes the brain MR as an urgent order: the producers put it on the STAT lane
STAT_SAMPLE = "emri_small.dcm"
ECG_HZ = 360  # MIT-BIH sampling rate
HR_AVERAGE_S = 8  # heart-rate averaging window, seconds
DEMO_PATIENT = "PSN-" + "0" * 31 + "1"  # the producers' form: the worker refuses clear ids


def heart_rate_window(seconds: int = WINDOW_LEN) -> list[Row]:
    """One row per second: heart rate of the MIT-BIH 208 ECG, as a monitor shows it.

    R peaks from scipy's peak finder; each second's rate is 60 / mean R-R interval of the beats
    in the last `HR_AVERAGE_S` seconds (this record is full of PVCs, so single intervals jump).
    Other channels are missing (None).
    """
    from scipy.misc import electrocardiogram  # scipy<1.12 ships the record in its wheel
    from scipy.signal import find_peaks

    peaks, _ = find_peaks(electrocardiogram(), distance=int(0.25 * ECG_HZ), prominence=0.5)
    beat_times = peaks[1:] / ECG_HZ
    intervals = np.diff(peaks) / ECG_HZ
    rows: list[Row] = []
    for second in range(seconds):
        recent = intervals[(beat_times > second + 1 - HR_AVERAGE_S) & (beat_times <= second + 1)]
        hr = float(60.0 / recent.mean()) if recent.size else None
        rows.append([hr] + [None] * (len(CHANNELS) - 1))
    return rows


def demo_vitals(event_id: str, start: datetime, rows: list[Row]) -> bytes:
    """The vitals message of the demo patient's monitor (one row per second from `start`)."""
    return encode_vitals(VitalsWindow(event_id=event_id, patient_id=DEMO_PATIENT,
                                      device_id="demo-monitor", start=start, interval_s=1.0,
                                      values=rows))


def stat_request(data: bytes) -> bytes:
    """The DICOM file as an urgent order: RequestedProcedurePriority (0040,1003) = STAT."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.RequestedProcedurePriority = "STAT"
    return encode(ds)
