"""triton_models: label mapping, training uses the worker's preprocessing, nets, export config."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from medstream_training import REPOSITORY, augment
from medstream_training.evaluate import read_config_parameters
from medstream_training.export import SCAN_DECLARATION, export_scan, export_vitals, sha256_file
from medstream_training.images import (
    ImageSet,
    load_folder,
    load_npz,
    patient_group,
    pneumonia_label,
)
from medstream_training.nets import ScanCNN, VitalsLSTM
from medstream_training.train_scan import ScanTrainConfig, eval_tensors, group_folds, train_scan
from medstream_training.vitals_data import news2_partial
from worker.preprocess.scan import pixels_to_tensor
from worker.preprocess.vitals import window_to_tensor


@pytest.mark.parametrize(("name", "label", "group"), [
    ("NORMAL2-IM-1427-0001.jpeg", "normal", "NORMAL2-IM-1427"),
    ("person1946_bacteria_4874.jpeg", "pneumonia", "person1946"),
    ("person12_virus_44.jpeg", "pneumonia", "person12"),
])
def test_pneumonia_label_and_patient(name: str, label: str, group: str) -> None:
    assert pneumonia_label(name) == label and patient_group(name) == group


def test_unknown_file_name_is_rejected() -> None:
    with pytest.raises(ValueError):
        pneumonia_label("scan_0001.jpeg")


KERMANY_VAL_FILES = (  # the file names in pneumonia-model-package 0.3.0
    *(f"NORMAL2-IM-{n}-0001.jpeg" for n in (1427, 1430, 1431, 1436, 1437, 1438, 1440, 1442)),
    "person1946_bacteria_4874.jpeg", "person1946_bacteria_4875.jpeg", "person1947_bacteria_4876.jpeg",
    "person1949_bacteria_4880.jpeg", "person1950_bacteria_4881.jpeg", "person1951_bacteria_4882.jpeg",
    "person1952_bacteria_4883.jpeg", "person1954_bacteria_4886.jpeg",
)


def test_bundled_file_names_map_to_balanced_labels_and_patients() -> None:
    labels = [pneumonia_label(n) for n in KERMANY_VAL_FILES]
    assert labels.count("normal") == 8 and labels.count("pneumonia") == 8
    assert len({patient_group(n) for n in KERMANY_VAL_FILES}) == 15  # person1946 has two images


def test_folder_tree_labels_sorted_by_class_name(tmp_path) -> None:
    from PIL import Image

    for cls, value in (("tumour", 200), ("healthy", 20)):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.full((20, 30), value, np.uint8)).save(tmp_path / cls / "a.png")
    data = load_folder(tmp_path)
    assert data.classes == ["healthy", "tumour"] and list(data.labels) == [0, 1]
    assert int(data.images[1].mean()) == 200


def test_medmnist_npz(tmp_path) -> None:
    rng = np.random.default_rng(0)
    arrays = {f"{p}_images": rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
              for p, n in (("train", 6), ("val", 2), ("test", 3))}
    arrays.update({f"{p}_labels": np.array([[i % 2] for i in range(n)])
                   for p, n in (("train", 6), ("val", 2), ("test", 3))})
    np.savez(tmp_path / "breastmnist.npz", **arrays)
    data = load_npz(tmp_path / "breastmnist.npz", ["benign", "malignant"])
    assert len(data.images) == 11 and data.split.count("test") == 3
    assert data.classes == ["benign", "malignant"] and list(data.labels[:4]) == [0, 1, 0, 1]
    assert list(data.train_indices()) == list(range(8))  # the shipped model never sees test


def test_out_of_range_label_rejected() -> None:
    with pytest.raises(ValueError):
        ImageSet([np.zeros((4, 4))], np.array([2]), ["a", "b"], ["g"], "test")


def test_group_folds_keep_patients_together() -> None:
    groups = ["p1", "p1", "p2", "p3", "p3", "p4", "p5", "p6"]
    labels = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    folds = group_folds(groups, labels, 3, seed=0)
    assert sorted(np.concatenate(folds)) == list(range(8))
    for fold in folds:
        inside = {groups[i] for i in fold}
        assert not inside & {groups[i] for i in np.setdiff1d(np.arange(8), fold)}


def test_training_path_uses_worker_preprocessing(monkeypatch) -> None:
    """Every training tensor is produced by worker.preprocess.scan.pixels_to_tensor."""
    calls = []

    def spy(pixels, **kwargs):
        calls.append(pixels.shape)
        return pixels_to_tensor(pixels, **kwargs)

    monkeypatch.setattr(augment, "pixels_to_tensor", spy)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 4096, (200, 160)).astype(np.uint16) for _ in range(4)]
    data = ImageSet(images, np.array([0, 1, 0, 1]), ["a", "b"], ["1", "2", "3", "4"], "test")
    train_scan(data, np.arange(4), ScanTrainConfig(epochs=1, batch_size=4, crops_per_image=1))
    assert 1 <= len(calls) <= 4 and all(h <= 200 and w <= 160 for h, w in calls)


def test_full_crop_equals_worker_tensor() -> None:
    pixels = np.random.default_rng(1).integers(0, 4096, (300, 240)).astype(np.uint16)
    crop = augment.random_crop(pixels, np.random.default_rng(0), min_frac=1.0)
    assert np.array_equal(pixels_to_tensor(crop), pixels_to_tensor(pixels))
    assert np.array_equal(eval_tensors([pixels]).numpy()[0], pixels_to_tensor(pixels))


def test_jitter_stays_in_range() -> None:
    batch = torch.rand(3, 1, 128, 128)
    out = augment.jitter(batch, np.random.default_rng(0))
    assert out.shape == batch.shape and 0.0 <= out.min() and out.max() <= 1.0


def test_scan_cnn_outputs_probabilities() -> None:
    probs = ScanCNN(3).eval()(torch.rand(5, 1, 128, 128))
    assert probs.shape == (5, 3) and torch.allclose(probs.sum(1), torch.ones(5))


def test_vitals_lstm_forecast_starts_from_last_observation() -> None:
    window = torch.from_numpy(window_to_tensor([[70.0, 95.0, 14.0, 110.0, 70.0, 36.8], [72.0, None, 15.0, 111.0, 71.0, None]]))
    last = VitalsLSTM.last_observed(window[None]) * torch.tensor([20, 4, 5, 20, 12, 0.7]) + torch.tensor([80, 96, 16, 120, 75, 37.0])
    assert torch.allclose(last[0], torch.tensor([72.0, 95.0, 15.0, 111.0, 71.0, 36.8]), atol=1e-4)
    risk, forecast = VitalsLSTM().eval()(window[None])
    assert risk.shape == (1, 1) and 0 <= risk.item() <= 1 and forecast.shape == (1, 6)


def test_news2_partial_scores() -> None:
    healthy = np.array([[75.0, 98.0, 14.0, 125.0, 80.0, 37.0]])
    sick = np.array([[135.0, 90.0, 26.0, 88.0, 50.0, 39.5]])
    assert news2_partial(healthy)[0] == 0 and news2_partial(sick)[0] == 3 + 3 + 3 + 3 + 2


def test_export_roundtrip_and_config(tmp_path) -> None:
    torch.manual_seed(0)
    model = ScanCNN(2).eval()
    digest = export_scan(model, ["normal", "pneumonia"], tmp_path, "test-1")
    onnx_path = tmp_path / "scan_cnn" / "1" / "model.onnx"
    assert digest == sha256_file(onnx_path)
    params = read_config_parameters(tmp_path / "scan_cnn" / "config.pbtxt")
    assert params == {"labels": "normal,pneumonia", "version": "test-1", "model_sha256": digest,
                      "intra_op_thread_count": "1", **SCAN_DECLARATION}
    x = np.random.default_rng(0).random((7, 1, 128, 128), dtype=np.float32)
    served = ort.InferenceSession(str(onnx_path)).run(None, {"image": x})[0]
    with torch.no_grad():
        assert np.allclose(served, model(torch.from_numpy(x)).numpy(), atol=1e-5)
    export_vitals(VitalsLSTM().eval(), tmp_path, "test-1")
    session = ort.InferenceSession(str(tmp_path / "vitals_lstm" / "1" / "model.onnx"))
    risk, forecast = session.run(None, {"window": np.zeros((5, 60, 12), np.float32)})
    assert risk.shape == (5, 1) and forecast.shape == (5, 6)


def test_export_rejects_commas_in_labels(tmp_path) -> None:
    with pytest.raises(ValueError):
        export_scan(ScanCNN(2).eval(), ["a,b", "c"], tmp_path, "x")


@pytest.mark.parametrize("model", ["scan_cnn", "vitals_lstm"])
def test_committed_config_hash_matches_model(model: str) -> None:
    params = read_config_parameters(REPOSITORY / model / "config.pbtxt")
    assert params["model_sha256"] == sha256_file(REPOSITORY / model / "1" / "model.onnx")
    assert "instance_group" not in (REPOSITORY / model / "config.pbtxt").read_text()


def test_training_is_reproducible_with_a_seed() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 64)).astype(np.uint8) for _ in range(4)]
    data = ImageSet(images, np.array([0, 1, 0, 1]), ["a", "b"], ["1", "2", "3", "4"], "test")
    config = ScanTrainConfig(epochs=2, batch_size=4, crops_per_image=2, seed=7)
    first, second = (train_scan(data, np.arange(4), config).state_dict() for _ in range(2))
    assert all(torch.equal(first[k], second[k]) for k in first)
