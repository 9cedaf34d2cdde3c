"""Evaluation of the imported Xception models: accuracy, calibration, DICOM loop, Triton grid.

- Accuracy / per-class recall with Wilson intervals and calibration (Brier, top-label ECE) on
  the images bundled with each package, from the ONNX model's probabilities.
- Preprocessing: `worker.preprocess.rgb` against the package's own (Keras load_img nearest +
  preprocess_input) on the JPEGs, and the JPEGs re-encoded as DICOM (MONOCHROME2 8-bit with an
  identity window, MONOCHROME1 inverted, no window = min..max, 12-bit with a window).
- Triton: a perf_analyzer-style grid (max_batch_size x concurrent single-image clients) through
  the load API with inline files, and CPU per image.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medstream_training import REPOSITORY
from medstream_training.keras_import import (
    INPUT_NAME,
    OUTPUT_NAME,
    SOURCES,
    KerasSource,
    bundled_images,
    onnx_probabilities,
    onnx_session,
    reference_input,
)
from medstream_training.stats import calibration, wilson
from worker.preprocess.rgb import dicom_to_rgb, rgb8_to_input, unit_to_rgb8

log = logging.getLogger(__name__)

SOP_CLASS = {"CR": "1.2.840.10008.5.1.4.1.1.1", "SC": "1.2.840.10008.5.1.4.1.1.7"}


# ---------------------------------------------------------------- DICOM fixtures

def grey_pixels(path: Path) -> np.ndarray:
    """A bundled JPEG as 2-D uint8 grey (they are grey; RGB ones have R == G == B)."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
        raise ValueError(f"{path.name} is not grey")
    return rgb[..., 0].copy()


def to_dicom(grey8: np.ndarray, *, modality: str, body_part: str, variant: str = "mono2") -> pydicom.Dataset:
    """Encode an 8-bit grey image as a DICOM file and read it back (Part-10 round trip).

    variant: "mono2" (8-bit, window 128/256 = identity under LINEAR), "mono1" (stored
    inverted, same window), "nowindow" (8-bit, no VOI: min..max), "12bit" (x * 16 in 12 bits,
    window 2048/4096).
    """
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    sop_class = SOP_CLASS["CR"] if modality in ("CR", "DX") else SOP_CLASS["SC"]
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = uid = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.BodyPartExamined, ds.PatientID = modality, body_part, "ANON"
    ds.Rows, ds.Columns = grey8.shape
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    pixels = grey8.astype(np.uint8)
    if variant == "12bit":
        pixels = grey8.astype(np.uint16) * 16
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
    else:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        if variant != "nowindow":
            ds.WindowCenter, ds.WindowWidth = 128, 256
    if variant == "mono1":
        pixels = (255 - pixels).astype(np.uint8)
    ds.PhotometricInterpretation = "MONOCHROME1" if variant == "mono1" else "MONOCHROME2"
    ds.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


DICOM_VARIANTS = ("mono2", "mono1", "nowindow", "12bit")


# ---------------------------------------------------------------- evaluation

def multiclass_brier(y: np.ndarray, probs: np.ndarray) -> float:
    """Mean over images of sum_k (p_k - [y == k])^2 (0 = perfect, 2 = confidently wrong)."""
    onehot = np.eye(probs.shape[1])[y]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def metrics(y: np.ndarray, probs: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Accuracy and per-class recall (Wilson 95%), Brier and top-label ECE (5 bins)."""
    pred = probs.argmax(axis=1)
    correct = pred == y
    _, ece, bins = calibration(correct.astype(float), probs.max(axis=1))
    return {
        "n": len(y),
        "correct": int(correct.sum()),
        "accuracy": wilson(int(correct.sum()), len(y)),
        "recall": {label: (wilson(int(((pred == k) & (y == k)).sum()), int((y == k).sum())),
                           int(((pred == k) & (y == k)).sum()), int((y == k).sum()))
                   for k, label in enumerate(labels)},
        "brier": multiclass_brier(y, probs),
        "ece": ece,
        "confidence_bins": bins,
        "confusion": [[int(((y == t) & (pred == p)).sum()) for p in range(len(labels))]
                      for t in range(len(labels))],
    }


def evaluate_model(source: KerasSource, repository: Path = REPOSITORY, threads: int = 2) -> dict:
    """Every check of one built model on its bundled images (see the module docstring)."""
    session = onnx_session(repository / source.model / "1" / "model.onnx", threads)
    images = bundled_images(source)
    y = np.array([im.label for im in images])
    fmt = source.fmt
    reference = np.stack([reference_input(im.path, fmt) for im in images])
    greys = [grey_pixels(im.path) for im in images]
    ours = np.stack([rgb8_to_input(unit_to_rgb8(g / 255.0, fmt.size), fmt) for g in greys])
    area = np.stack([rgb8_to_input(unit_to_rgb8(g / 255.0, fmt.size, "area"), fmt) for g in greys])
    started = time.process_time()
    probs = onnx_probabilities(session, reference)
    cpu_ms = (time.process_time() - started) * 1000 / len(images)
    area_probs = onnx_probabilities(session, area)
    dicom = {}
    for variant in DICOM_VARIANTS:
        x = np.stack([dicom_to_rgb(to_dicom(g, modality=source.modalities[0],
                                            body_part=source.body_parts[0], variant=variant),
                                   fmt.size) for g in greys])
        p = onnx_probabilities(session, x)
        dicom[variant] = {
            "max_abs_input_diff": float(np.abs(x - reference).max()),
            "max_abs_prob_diff": float(np.abs(p - probs).max()),
            "same_class": int((p.argmax(1) == probs.argmax(1)).sum()),
        }
    return {
        "model": source.model, "labels": list(source.labels), "package": source.package,
        "version": source.version, "names": [im.name for im in images],
        "source_sha256": source.sha256,
        "declaration": (f"modalities `{','.join(source.modalities)}`, body parts "
                        f"`{','.join(source.body_parts)}`, input `{source.input_format}`"),
        "probabilities": probs.round(6).tolist(),
        "metrics": metrics(y, probs, source.labels),
        "preprocess": {
            "jpeg_nearest_max_abs_input_diff": float(np.abs(ours - reference).max()),
            "area_max_abs_prob_diff": float(np.abs(area_probs - probs).max()),
            "area_same_class": int((area_probs.argmax(1) == probs.argmax(1)).sum()),
            "area_metrics": metrics(y, area_probs, source.labels),
        },
        "dicom": dicom,
        "ort_cpu_ms_per_image_batch8": cpu_ms,
    }


# ---------------------------------------------------------------- Triton

def config_json(config_pbtxt: str, name: str) -> str:
    """A config.pbtxt as the JSON the load API takes, renamed to `name`."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    config = text_format.Parse(config_pbtxt, model_config_pb2.ModelConfig())
    config.name = name
    return json_format.MessageToJson(config, preserving_proto_field_name=True)


def load_inline(client, name: str, model_dir: Path, *, max_batch_size: int | None = None) -> None:
    """Load `model_dir` (config.pbtxt + 1/model.onnx) into Triton as `name` with inline files."""
    config = json.loads(config_json((model_dir / "config.pbtxt").read_text(), name))
    if max_batch_size is not None:
        config["max_batch_size"] = max_batch_size
    files = {"file:1/model.onnx": (model_dir / "1" / "model.onnx").read_bytes()}
    client.load_model(name, config=json.dumps(config), files=files)


def _stub_cpu_s(name: str) -> dict[str, float]:
    """{pid: user+system CPU seconds} of the python-backend stub processes serving `name`."""
    total = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            # the stub's arguments name the instance: "<model>_<instance index>"
            if "triton_python_backend_stub" not in cmdline or f" {name}_" not in cmdline:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total[pid] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return total


@dataclass(frozen=True)
class GridPoint:
    round: int
    max_batch_size: int
    concurrency: int
    images_per_s: float
    p50_ms: float
    p95_ms: float
    stub_cpu_ms_per_image: float


def _drive(url: str, name: str, x: np.ndarray, concurrency: int, seconds: float) -> tuple[list[float], float]:
    import tritonclient.http as httpclient

    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker() -> None:
        client = httpclient.InferenceServerClient(url, network_timeout=120)
        inp = httpclient.InferInput(INPUT_NAME, list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        out = [httpclient.InferRequestedOutput(OUTPUT_NAME, binary_data=True)]
        mine = []
        while time.perf_counter() < stop:
            t = time.perf_counter()
            client.infer(name, [inp], outputs=out)
            mine.append(time.perf_counter() - t)
        client.close()
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - started


def triton_grid(url: str, model_dir: Path, max_batches: tuple[int, ...] = (1, 4, 8, 16),
                concurrencies: tuple[int, ...] = (1, 4, 16), seconds: float = 4.0,
                rounds: int = 2) -> list[GridPoint]:
    """Throughput/latency of single-image requests per (max_batch_size, concurrency).

    The CPU is shared, so the grid runs `rounds` times, alternately in ascending and descending
    max_batch_size order, and the card shows the mean with the range.
    """
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url, network_timeout=300)
    name = f"grid_{model_dir.name}_{os.getpid()}"
    dims = json.loads(config_json((model_dir / "config.pbtxt").read_text(), name))["input"][0]["dims"]
    x = np.zeros((1, *(int(d) for d in dims)), dtype=np.float32)  # proto JSON: int64 as strings
    points = []
    try:
        order = [(r, mbs) for r in range(rounds)
                 for mbs in (max_batches if r % 2 == 0 else tuple(reversed(max_batches)))]
        for rnd, mbs in order:
            load_inline(client, name, model_dir, max_batch_size=mbs)
            _drive(url, name, x, 2, 1.0)  # warm-up
            for concurrency in concurrencies:
                cpu0 = _stub_cpu_s(name)
                lat, wall = _drive(url, name, x, concurrency, seconds)
                cpu = sum(v - cpu0.get(pid, 0.0) for pid, v in _stub_cpu_s(name).items())
                lat_ms = np.array(lat) * 1000
                points.append(GridPoint(rnd, mbs, concurrency, len(lat) / wall,
                                        float(np.percentile(lat_ms, 50)),
                                        float(np.percentile(lat_ms, 95)),
                                        cpu * 1000 / max(1, len(lat))))
                log.info("grid %s", points[-1])
    finally:
        try:
            client.unload_model(name)
        finally:
            client.close()
    return points


def ort_batch_costs(model_path: Path, batches: tuple[int, ...] = (1, 2, 4, 8, 16, 32),
                    threads: int = 2) -> list[dict]:
    """In-process onnxruntime CPU and wall ms per image by batch size (process CPU time is
    robust to other processes sharing the CPU; wall time is not)."""
    session = onnx_session(model_path, threads)
    shape = [int(d) for d in session.get_inputs()[0].shape[1:]]
    rows = []
    for batch in batches:
        x = np.zeros((batch, *shape), dtype=np.float32)
        session.run([OUTPUT_NAME], {INPUT_NAME: x})
        repeats = max(2, 32 // batch)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(repeats):
            session.run([OUTPUT_NAME], {INPUT_NAME: x})
        n = repeats * batch
        rows.append({"batch": batch, "threads": threads,
                     "cpu_ms_per_image": (time.process_time() - cpu) * 1000 / n,
                     "wall_ms_per_image": (time.perf_counter() - wall) * 1000 / n})
    return rows


def evaluate_imported(models: tuple[str, ...], repository: Path = REPOSITORY, threads: int = 2,
                      triton_url: str | None = None, grid_model: str | None = None) -> dict:
    """Results for the card: per model metrics; the Triton grid on `grid_model` when a URL is given."""
    results: dict = {"models": {}, "cpu_count": os.cpu_count(),
                     "load_average": round(os.getloadavg()[0], 1)}
    for name in models:
        results["models"][name] = evaluate_model(SOURCES[name], repository, threads)
        build = repository / name / "build.json"
        if build.is_file():
            record = json.loads(build.read_text())
            results["models"][name]["build"] = {k: record[k] for k in (
                "model_sha256", "onnx_bytes", "load_s", "export_s", "check_s", "max_abs_diff",
                "check_images", "torch", "keras", "opset")}
    if grid_model:
        results["grid_model"] = grid_model
        results["ort_batches"] = ort_batch_costs(repository / grid_model / "1" / "model.onnx", threads=threads)
    if triton_url and grid_model:
        results["grid_model"] = grid_model
        results["grid"] = [p.__dict__ for p in triton_grid(triton_url, repository / grid_model)]
    return results
