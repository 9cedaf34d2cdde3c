"""DICOM de-identification: PS3.15 Annex E basic confidentiality profile, retain-what-we-need.

Every top-level attribute is handled by exactly one action (see docs/producers.md):
- KEEP: pixel data and what preprocessing needs (dims, photometric, rescale, window, LUTs),
  plus non-identifying technical descriptors. Basic-profile "K" for these attributes.
- PSEUDONYMISE: PatientID and PatientName -> the keyed patient pseudonym; an empty PatientID
  gets a per-study "UNKNOWN-" pseudonym instead (never one shared by unrelated studies).
- REMAP: Study/Series/SOP Instance UIDs and Frame of Reference UID -> keyed 2.25 UIDs (the
  profile's "U"), consistent across instances, so studies still group and re-runs are idempotent.
- EMPTY: type-2 identifying attributes the standard requires to be present (profile "Z").
- REMOVE: everything else, including all private tags, overlays and other sequences (profile "X";
  removing more than the profile asks is allowed).
Instances flagged BurnedInAnnotation=YES are rejected: the clean-pixel option is not implemented.
"""

from __future__ import annotations

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence

from producers.deid.pseudonym import Pseudonymizer

KEEP: frozenset[str] = frozenset(
    {
        "SpecificCharacterSet",
        "SOPClassUID",
        "Modality",
        "ImageType",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "PlanarConfiguration",
        "NumberOfFrames",
        "FrameIncrementPointer",
        "PixelAspectRatio",
        "PixelSpacing",
        "ImagerPixelSpacing",
        "SliceThickness",
        "ImageOrientationPatient",
        "ImagePositionPatient",
        "PatientOrientation",
        "RescaleIntercept",
        "RescaleSlope",
        "RescaleType",
        "ModalityLUTSequence",
        "WindowCenter",
        "WindowWidth",
        "VOILUTFunction",
        "VOILUTSequence",
        "PresentationLUTShape",
        "PixelPaddingValue",
        "PixelPaddingRangeLimit",
        "SmallestImagePixelValue",
        "LargestImagePixelValue",
        "RedPaletteColorLookupTableDescriptor",
        "GreenPaletteColorLookupTableDescriptor",
        "BluePaletteColorLookupTableDescriptor",
        "RedPaletteColorLookupTableData",
        "GreenPaletteColorLookupTableData",
        "BluePaletteColorLookupTableData",
        "SegmentedRedPaletteColorLookupTableData",
        "SegmentedGreenPaletteColorLookupTableData",
        "SegmentedBluePaletteColorLookupTableData",
        "LossyImageCompression",
        "LossyImageCompressionRatio",
        "LossyImageCompressionMethod",
        "BurnedInAnnotation",
        "BodyPartExamined",
        "ViewPosition",
        "Laterality",
        "ImageLaterality",
        "SeriesNumber",
        "InstanceNumber",
        "AcquisitionNumber",
        "PixelData",
        "FloatPixelData",
        "DoubleFloatPixelData",
    }
)
PSEUDONYMISE: frozenset[str] = frozenset({"PatientID", "PatientName"})
REMAP: frozenset[str] = frozenset(
    {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"}
)
EMPTY: frozenset[str] = frozenset(
    {
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
        "ContentDate",
        "ContentTime",
    }
)
DEID_METHOD = "PS3.15 E.1 Basic Profile; HMAC-SHA256 pseudonyms and UIDs"


class BurnedInAnnotation(ValueError):
    """The instance declares burned-in annotation, which this profile cannot clean."""


def _copy(source: Dataset, target: Dataset, keyword: str) -> None:
    if keyword in source:
        target[keyword] = source[keyword]


def deidentify(ds: Dataset, pseudonyms: Pseudonymizer) -> Dataset:
    """A new, de-identified dataset (file meta included); `ds` is not modified.

    Raises BurnedInAnnotation for instances flagged BurnedInAnnotation=YES.
    """
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        raise BurnedInAnnotation("instance has burned-in annotation (BurnedInAnnotation=YES)")
    out = Dataset()
    for element in ds:
        keyword = element.keyword
        if element.tag.is_private or not keyword:
            continue
        if keyword in KEEP:
            out[keyword] = element
        elif keyword in REMAP and element.value:
            out.add_new(element.tag, element.VR, pseudonyms.uid(str(element.value)))
        elif keyword in EMPTY:
            out.add_new(element.tag, element.VR, None)
    study = str(ds.get("StudyInstanceUID", "") or ds.get("SOPInstanceUID", "") or "")
    pseudonym = pseudonyms.patient_or_unknown(str(ds.get("PatientID", "") or ""), study)
    out.PatientID = pseudonym
    out.PatientName = pseudonym
    for keyword in EMPTY - {"ContentDate", "ContentTime"}:
        if keyword not in out:
            setattr(out, keyword, None)
    out.PatientIdentityRemoved = "YES"
    out.LongitudinalTemporalInformationModified = "REMOVED"
    out.DeidentificationMethod = DEID_METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    out.DeidentificationMethodCodeSequence = Sequence([code])
    out.file_meta = _file_meta(ds, out)
    return out


def _file_meta(ds: Dataset, out: Dataset) -> FileMetaDataset:
    """File meta for the de-identified instance: same transfer syntax, remapped SOP UID."""
    meta = FileMetaDataset()
    source = getattr(ds, "file_meta", FileMetaDataset())
    _copy(source, meta, "TransferSyntaxUID")
    meta.MediaStorageSOPClassUID = out.get("SOPClassUID", source.get("MediaStorageSOPClassUID"))
    meta.MediaStorageSOPInstanceUID = out.get("SOPInstanceUID")
    return meta
