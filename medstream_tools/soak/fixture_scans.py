"""Scans and routing rules for runs on the fast fixture model (`scan_cnn`, declared CR/DX
chest, "test fixture, not a clinical model"): the chaos scenarios, the soak and the worker
integration tests.

`synthetic_radiograph` makes a small DX chest radiograph (128 x 128, smooth synthetic pixels)
that the fixture rules route to the fixture model; pydicom's CT/MR/NM samples are skipped by
the same rules, so a load mixes predictions and skips. `fixture_rules` writes a rules file
routing PA and AP chest radiographs (to one model or two: a batch then holds rows for two
models) and, optionally, brain/head MR to a second model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

FIXTURE_MODEL = "scan_cnn"


def synthetic_radiograph(view: str = "PA", seed: int = 0, size: int = 128) -> pydicom.Dataset:
    """A DX chest radiograph (ViewPosition `view`) with synthetic pixels and fresh UIDs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    pixels = 2000 + 1500 * np.sin(3 * x + rng.uniform(0, 3)) * np.cos(2 * y) + rng.normal(0, 50, (size, size))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", view
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.AcquisitionDateTime = "20240105101500"  # an archive image: acquired long before it is sent
    ds.PatientID = f"pseudo-synthetic-{seed}"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.clip(pixels, 0, 4095).astype(np.uint16).tobytes()
    return ds


_CHEST = "      Modality: [CR, DX]\n      BodyPartExamined: CHEST\n"


def fixture_rules(path: Path, pa: str = FIXTURE_MODEL, ap: str | None = None,
                  brain: str | None = None) -> Path:
    """Write a rules file: PA chest radiographs -> `pa`, AP -> `ap` (default `pa`), brain/head
    MR -> `brain` (else skipped), CT/US/NM/secondary capture skipped; returns `path`."""
    rules = [("chest-pa", f"{_CHEST}      ViewPosition: PA\n", f"route: {pa}"),
             ("chest-ap", f"{_CHEST}      ViewPosition: AP\n", f"route: {ap or pa}")]
    if brain is not None:
        rules.append(("brain-mr", "      Modality: MR\n      BodyPartExamined: [BRAIN, HEAD]\n",
                      f"route: {brain}"))
    rules += [("other-modalities", "      Modality: [CR, DX, MR, CT, US, NM, PT, OT]\n",
               "skip: no fixture model for it")]
    body = "".join(f"  - name: {name}\n    when:\n{when}    {action}\n" for name, when, action in rules)
    path.write_text(f"# fixture routing rules (medstream_tools/soak/fixture_scans.py)\nversion: 1\n"
                    f"rules:\n{body}")
    return path
