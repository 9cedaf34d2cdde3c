"""DICOM attributes as the router sees them: strings, read from the header, never raising.

A missing, empty or malformed attribute reads as absent (no values), so an instance with odd
routing attributes is routed as if they were not there (docs/routing.md). SOPClassUID falls
back to the file meta's MediaStorageSOPClassUID (a DICOMDIR has only that one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pydicom
from pydicom.multival import MultiValue
from pydicom.uid import UID, EnhancedUSVolumeStorage

Lookup = Callable[[str], tuple[str, ...]]
"""keyword -> the attribute's values as stripped strings; () when absent."""

STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1."
NOT_CLINICAL = ("DICOS ", "Eddy Current ", "Hardcopy ")
REPORTED = ("Modality", "BodyPartExamined", "SOPClassUID", "ViewPosition", "ImageType",
            "PhotometricInterpretation", "Rows", "Columns", "NumberOfFrames")
"""The attributes a skip record and `medstream route explain` show: coded values and sizes,
never identifiers or free text (SeriesDescription/ProtocolName may be matched, not shown)."""


def is_image_storage(uid: str) -> bool:
    """True for an image storage SOP class: a storage class whose DICOM name contains
    "Image Storage" (CR, DX, CT, MR, US, NM, PET, secondary capture, VL, ...) and Enhanced US
    Volume, but not the non-clinical ones (DICOS screening, eddy current, print hardcopy)."""
    if uid == EnhancedUSVolumeStorage:
        return True
    name = UID(uid).name
    return (uid.startswith(STORAGE_ROOT) and "Image Storage" in name
            and not name.startswith(NOT_CLINICAL))


def sop_class_name(uid: str) -> str:
    """The DICOM name of a SOP class UID ("CT Image Storage"), or the UID when unknown."""
    return UID(uid).name


def _strings(value: Any) -> tuple[str, ...]:
    items: Sequence[Any] = value if isinstance(value, MultiValue | list | tuple) else [value]
    out = []
    for item in items:
        if isinstance(item, pydicom.Dataset | bytes | bytearray):
            return ()  # sequences and binary values are not routing attributes
        text = str(item).strip()
        if text:
            out.append(text)
    return tuple(out)


def read_values(ds: pydicom.Dataset, keyword: str) -> tuple[str, ...]:
    """The values of `keyword` in `ds` (see the module docstring); never raises."""
    try:
        value = ds.get(keyword)
        if keyword == "SOPClassUID" and not value:
            meta = getattr(ds, "file_meta", None)
            value = meta.get("MediaStorageSOPClassUID") if meta is not None else None
        return () if value is None else _strings(value)
    except Exception:  # noqa: BLE001 - a malformed element (bad VR, number) reads as absent
        return ()


def dataset_lookup(ds: pydicom.Dataset) -> Lookup:
    """A cached `Lookup` over one dataset's header."""
    cache: dict[str, tuple[str, ...]] = {}

    def lookup(keyword: str) -> tuple[str, ...]:
        if keyword not in cache:
            cache[keyword] = read_values(ds, keyword)
        return cache[keyword]

    return lookup


def mapping_lookup(values: dict[str, Any]) -> Lookup:
    """A `Lookup` over plain values (tests, tools): str, number, list or None per keyword."""
    return lambda keyword: _strings(values[keyword]) if values.get(keyword) is not None else ()


def reported(lookup: Lookup) -> dict[str, str | list[str] | None]:
    """The REPORTED attributes: one value as a string, several as a list, absent as None."""
    out: dict[str, str | list[str] | None] = {}
    for keyword in REPORTED:
        values = lookup(keyword)
        out[keyword] = None if not values else values[0] if len(values) == 1 else list(values)
    return out
