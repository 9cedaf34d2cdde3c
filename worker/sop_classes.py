"""Which DICOM SOP classes are images a model may look at: an allow-list, checked before any
pixel is decoded.

The allow-list is every storage SOP class of pydicom's DICOM registry whose name contains
"Image Storage" (CT, MR, CR, DX, MG, US, NM, PET, XA, SC, VL photography, ...), plus Enhanced
US Volume, minus the non-clinical ones (DICOS security screening, DICONDE eddy current, print
hardcopy). Everything else - RT Dose/Plan/Structure Set, Segmentation, SR, Key Object
Selection, presentation states, encapsulated PDF/CDA, waveforms, raw data, parametric maps,
private SOP classes - is refused as `non_image`: an allow-list fails closed when the standard
adds a class, a deny-list would serve it as an image.
"""

from __future__ import annotations

import pydicom
from pydicom._uid_dict import UID_dictionary
from pydicom.uid import UID, EnhancedUSVolumeStorage

from worker.errors import DeadLetterReason, PoisonMessage

_NOT_CLINICAL = ("DICOS ", "Eddy Current ", "Hardcopy ")

IMAGE_STORAGE: frozenset[str] = frozenset(
    uid
    for uid, (name, kind, *_rest) in UID_dictionary.items()
    if kind == "SOP Class" and "Image Storage" in name and not name.startswith(_NOT_CLINICAL)
) | {str(EnhancedUSVolumeStorage)}
"""SOP Class UIDs whose instances are images a model may be given."""


def sop_class(ds: pydicom.Dataset) -> str:
    """The SOPClassUID, else the file meta's MediaStorageSOPClassUID; "" when neither is set."""
    value = ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")
    return str(value or "").strip()


def require_image(ds: pydicom.Dataset) -> None:
    """PoisonMessage(DeadLetterReason.NON_IMAGE) unless `ds` belongs to an image storage class."""
    uid = sop_class(ds)
    if not uid:
        raise PoisonMessage(DeadLetterReason.NON_IMAGE,
                            "no SOP Class UID: cannot tell whether the instance is an image")
    if uid not in IMAGE_STORAGE:
        raise PoisonMessage(DeadLetterReason.NON_IMAGE,
                            f"SOP class {UID(uid[:64]).name!r} is not an image storage class")
