"""A real-size CNN workload: CheXNet's architecture (DenseNet-121, 224x224x3), random weights.

A **performance workload, not a clinical model**: its outputs mean nothing. It takes the scan
kind's tensor (`image` FP32 [1, 128, 128]), resizes it to 224x224 and repeats it over three
channels inside the graph, and answers `probabilities` [2], so the real worker serves it
unchanged (the benchmark's routing rules send its corpus to it). Built in plain torch (torchvision is not installed
here), exported to ONNX at bench time and loaded into the running Triton through its load API.
"""

from __future__ import annotations

import io
import json
import warnings

import torch
import tritonclient.http as triton_http
from torch import nn

NAME = "bench_densenet121"  # = workloads.CNN_MODEL (that module does not import torch)
LABELS = "perf_a,perf_b"
MAX_BATCH = 8
OPSET = 17
SIDE = 224


class _Layer(nn.Sequential):
    def __init__(self, channels: int, growth: int, bottleneck: int) -> None:
        super().__init__(
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, bottleneck * growth, 1, bias=False),
            nn.BatchNorm2d(bottleneck * growth), nn.ReLU(inplace=True),
            nn.Conv2d(bottleneck * growth, growth, 3, padding=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, super().forward(x)], 1)


def _transition(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                         nn.Conv2d(channels, channels // 2, 1, bias=False), nn.AvgPool2d(2, 2))


class DenseNet121(nn.Module):
    """DenseNet-121 (growth 32, blocks 6/12/24/16, bottleneck 4, 64 initial features)."""

    def __init__(self, classes: int = 2, growth: int = 32,
                 blocks: tuple[int, ...] = (6, 12, 24, 16)) -> None:
        super().__init__()
        channels = 64
        layers: list[nn.Module] = [
            nn.Conv2d(3, channels, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1)]
        for index, count in enumerate(blocks):
            for _ in range(count):
                layers.append(_Layer(channels, growth, 4))
                channels += growth
            if index < len(blocks) - 1:
                layers.append(_transition(channels))
                channels //= 2
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1)
        return self.classifier(pooled)


class ScanInput(nn.Module):
    """[N, 1, 128, 128] in [0, 1] -> 224x224, 3 channels -> DenseNet-121 -> softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.net = DenseNet121()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(image, size=(SIDE, SIDE), mode="bilinear",
                                      align_corners=False)
        return torch.softmax(self.net(x.repeat(1, 3, 1, 1)), dim=1)


def onnx_bytes(seed: int = 0) -> bytes:
    """The wrapped DenseNet-121 with random weights (seeded) as ONNX bytes."""
    torch.manual_seed(seed)
    model = ScanInput().eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation notice
        torch.onnx.export(model, (torch.zeros(1, 1, 128, 128),), buffer, dynamo=False,
                          opset_version=OPSET, input_names=["image"],
                          output_names=["probabilities"],
                          dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}})
    return buffer.getvalue()


def triton_config(name: str = NAME, threads: int = 1) -> dict:
    """config.pbtxt as JSON for Triton's load API: the scan CNN's tensors and labels."""
    return {
        "name": name, "backend": "onnxruntime", "max_batch_size": MAX_BATCH,
        "input": [{"name": "image", "data_type": "TYPE_FP32", "dims": [1, 128, 128]}],
        "output": [{"name": "probabilities", "data_type": "TYPE_FP32", "dims": [2]}],
        "dynamic_batching": {"max_queue_delay_microseconds": 2000},
        "parameters": {"labels": {"string_value": LABELS},
                       "version": {"string_value": "perf-workload-random-weights"},
                       # routing declaration: the bench's fixture rules route its corpus
                       # (headed as PA chest radiographs) to the model under measurement
                       "modalities": {"string_value": "CR,DX"},
                       "body_parts": {"string_value": "CHEST"},
                       "input_format": {"string_value": "gray128"},
                       "intended_use": {"string_value": "performance workload, not a model"},
                       "intra_op_thread_count": {"string_value": str(threads)}},
    }


def load(http_url: str, name: str = NAME) -> bytes:
    """Export and load the model into the running Triton; returns the ONNX bytes."""
    model = onnx_bytes()
    client = triton_http.InferenceServerClient(http_url, network_timeout=300.0)
    try:
        client.load_model(name, config=json.dumps(triton_config(name)),
                          files={"file:1/model.onnx": model})
    finally:
        client.close()
    return model


def unload(http_url: str, name: str = NAME) -> None:
    """Unload it again (the shared Triton keeps only its repository's models)."""
    client = triton_http.InferenceServerClient(http_url)
    try:
        client.unload_model(name)
    finally:
        client.close()
