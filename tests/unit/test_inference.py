"""Inference helpers: batching, backoff, breaker, retries, Triton error mapping and checks."""

from __future__ import annotations

from unittest.mock import MagicMock

import numpy as np
import pytest
import tritonclient.grpc.aio as grpcclient
from pydantic import ValidationError
from tritonclient.utils import InferenceServerException

from tests.support.fake_backend import FakeBackend
from worker.errors import ConfigurationError, DeadLetterReason, PoisonMessage, RetryableInference
from worker.inference.batching import chunk_slices, halves, split_rows
from worker.inference.resilience import Backoff, CircuitBreaker, RetryingBackend
from worker.inference.triton import TritonBackend, channel_args, check_model, classify_error
from worker.kinds.scan import scan_model_spec
from worker.kinds.vitals import vitals_model_spec
from worker.metrics import Metrics
from worker.settings import Settings


def test_chunks_cover_the_batch_in_order() -> None:
    assert chunk_slices(70, 32) == [slice(0, 32), slice(32, 64), slice(64, 70)]
    assert chunk_slices(0, 8) == []
    assert halves(5) == (slice(0, 2), slice(2, 5))
    with pytest.raises(ValueError):
        chunk_slices(3, 0)
    with pytest.raises(ValueError):
        halves(1)


def test_split_rows_checks_the_batch_dimension() -> None:
    rows = split_rows({"a": np.arange(6).reshape(3, 2), "b": np.arange(3)}, 3)
    assert [r["b"] for r in rows] == [0, 1, 2] and rows[2]["a"].tolist() == [4, 5]
    with pytest.raises(ValueError):
        split_rows({"a": np.arange(2)}, 3)


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    b = Backoff(0.1, 1.0)
    assert [b.delay(n, rand=lambda: 1.0) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert [b.delay(n, rand=lambda: 0.0) for n in range(3)] == pytest.approx([0.05, 0.1, 0.2])
    assert b.delay(10_000) <= 1.0


def test_backoff_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="retry_max_s"):
        Settings(_env_file=None, retry_initial_s=2.0, retry_max_s=1.0)


def test_breaker_opens_at_threshold_and_closes_on_success() -> None:
    br = CircuitBreaker(3)
    assert [br.record_failure() for _ in range(4)] == [False, False, True, False]
    assert br.is_open and br.record_success() and not br.is_open
    assert not br.record_success()


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_retryable_errors_are_retried_until_success_with_breaker() -> None:
    answers = [False, False]
    fake = FakeBackend(failures=[RetryableInference("UNAVAILABLE", "down")] * 4,
                       ready=lambda: answers.pop(0) if answers else True)
    metrics, sleeps, events = Metrics.create(), Sleeps(), []
    backend = RetryingBackend(fake, backoff=Backoff(0.1, 1.0), threshold=3, metrics=metrics,
                              on_open=lambda m: events.append(("open", m)),
                              on_close=lambda m: events.append(("close", m)), sleep=sleeps,
                              probe_s=10.0)
    out = await backend.infer("scan_cnn", {"image": np.full((2, 1, 4, 4), 0.5, np.float32)})
    assert out["probabilities"].shape == (2, 2)
    # open after the 3rd failure: its backoff then a probe (F), F again before the 4th attempt,
    # a probe every probe_s until T; the 4th failure's backoff, a probe (T), T before the 5th
    assert len(fake.calls) == 5 and fake.probes == 5
    assert events == [("open", "scan_cnn"), ("close", "scan_cnn")]
    assert len(sleeps.delays) == 4 + 1 and sleeps.delays[3] == 10.0  # one per failure + probe_s
    value = metrics.registry.get_sample_value
    assert value("medstream_inference_errors_total", {"model": "scan_cnn", "code": "UNAVAILABLE"}) == 4
    assert value("medstream_circuit_open", {"model": "scan_cnn"}) == 0


async def test_open_breaker_retries_once_a_probe_sees_the_model_come_back() -> None:
    answers = [False, False]  # Triton down for two probes, then back
    fake = FakeBackend(failures=[RetryableInference("UNAVAILABLE", "down")] * 3,
                       ready=lambda: answers.pop(0) if answers else True)
    sleeps = Sleeps()
    backend = RetryingBackend(fake, backoff=Backoff(30.0, 60.0), threshold=3,
                              metrics=Metrics.create(), sleep=sleeps, probe_s=0.5)
    await backend.infer("scan_cnn", {"image": np.zeros((1, 1, 4, 4), np.float32)})
    assert len(fake.calls) == 4
    assert sleeps.delays[2:] == [0.5, 0.5, 0.5]  # not the rest of a 30-60 s backoff


async def test_open_breaker_keeps_the_backoff_while_the_model_stays_ready() -> None:
    fake = FakeBackend(failures=[RetryableInference("DEADLINE_EXCEEDED", "slow")] * 3)
    sleeps = Sleeps()
    backend = RetryingBackend(fake, backoff=Backoff(2.0, 2.0), threshold=3,
                              metrics=Metrics.create(), sleep=sleeps, probe_s=0.5)
    await backend.infer("scan_cnn", {"image": np.zeros((1, 1, 4, 4), np.float32)})
    after_open = sleeps.delays[2:]  # an overloaded server is not retried sooner
    assert 1.0 <= sum(after_open) <= 2.0 and max(after_open) <= 0.5


def test_channel_args_keep_tritonclient_defaults_and_set_the_reconnect_backoff(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[tuple[str, object]]] = []
    monkeypatch.setattr(grpcclient.grpc.aio, "insecure_channel",
                        lambda url, options: seen.append(list(options)) or MagicMock())
    grpcclient.InferenceServerClient("127.0.0.1:1")  # what tritonclient uses by default
    ours = channel_args(0.25, 1.5)
    assert ours[:-2] == seen[0]
    assert ours[-2:] == [("grpc.initial_reconnect_backoff_ms", 250),
                         ("grpc.max_reconnect_backoff_ms", 1500)]


def test_backend_from_settings_uses_the_reconnect_settings() -> None:
    settings = Settings(triton_reconnect_initial_s=0.1, triton_reconnect_max_s=2.0)
    backend = TritonBackend.from_settings(settings, Metrics.create(), priority=3)
    assert backend._channel == {"channel_args": channel_args(0.1, 2.0)}
    assert backend._priority == 3
    with pytest.raises(ValidationError, match="triton_reconnect_max_s"):
        Settings(triton_reconnect_initial_s=2.0, triton_reconnect_max_s=1.0)


async def test_poison_passes_through_without_retry() -> None:
    fake = FakeBackend(failures=[PoisonMessage(DeadLetterReason.INFERENCE_INVALID_ARGUMENT, "bad")])
    metrics = Metrics.create()
    backend = RetryingBackend(fake, backoff=Backoff(0.1, 1.0), threshold=3, metrics=metrics,
                              sleep=Sleeps())
    with pytest.raises(PoisonMessage):
        await backend.infer("m", {"x": np.zeros((1, 2), np.float32)})
    assert len(fake.calls) == 1
    assert metrics.registry.get_sample_value(
        "medstream_inference_errors_total", {"model": "m", "code": "INVALID_ARGUMENT"}) == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [("StatusCode.INVALID_ARGUMENT", PoisonMessage), ("StatusCode.UNAVAILABLE", RetryableInference),
     ("StatusCode.DEADLINE_EXCEEDED", RetryableInference),
     ("StatusCode.RESOURCE_EXHAUSTED", RetryableInference), ("StatusCode.INTERNAL", RetryableInference)],
)
def test_triton_errors_are_classified(status: str, expected: type) -> None:
    error = classify_error(InferenceServerException("boom", status=status))
    assert isinstance(error, expected)
    if isinstance(error, RetryableInference):
        assert error.code == status.split(".")[1]


def test_other_errors_are_classified() -> None:
    assert classify_error(TimeoutError()).code == "DEADLINE_EXCEEDED"  # type: ignore[attr-defined]
    assert classify_error(ConnectionRefusedError()).code == "CONNECTION"  # type: ignore[attr-defined]
    client_side = InferenceServerException("bad dtype")
    assert classify_error(client_side) is client_side
    bug = KeyError("x")
    assert classify_error(bug) is bug


def metadata(image_shape: list[str], dtype: str = "FP32") -> dict:
    return {"name": "scan_cnn", "versions": ["1", "2"],
            "inputs": [{"name": "image", "datatype": dtype, "shape": image_shape}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": ["-1", "2"]}]}


CONFIG = {"config": {"max_batch_size": 32, "parameters": {
    "labels": {"string_value": "normal, pneumonia"}, "model_sha256": {"string_value": "ab" * 32}}}}


def test_check_model_reads_batch_labels_and_version() -> None:
    info = check_model(scan_model_spec("scan_cnn"), metadata(["-1", "1", "128", "128"]), CONFIG)
    assert (info.max_batch_size, info.labels) == (32, ("normal", "pneumonia"))
    assert info.version == "2+sha256.abababababab"
    assert info.parameters["labels"] == "normal, pneumonia"  # the declaration, as strings
    assert info.input_dims == {"image": (1, 128, 128)}


@pytest.mark.parametrize(
    ("meta", "config", "message"),
    [
        (metadata(["-1", "64", "64"]), CONFIG, "FP32 [64, 64]"),  # image models take rank 3
        (metadata(["-1", "1", "128", "128"], "FP16"), CONFIG, "FP16"),
        ({**metadata(["-1", "1", "128", "128"]), "inputs": []}, CONFIG, "no input 'image'"),
        ({**metadata(["-1", "1", "128", "128"]), "outputs": []}, CONFIG, "no output 'probabilities'"),
        (metadata(["-1", "1", "128", "128"]), {"config": {"max_batch_size": 0}}, "must batch"),
    ],
)
def test_check_model_fails_fast_on_mismatch(meta: dict, config: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[")):
        check_model(scan_model_spec("scan_cnn"), meta, config)


def test_vitals_spec_matches_the_contract() -> None:
    spec = vitals_model_spec("vitals_lstm")
    assert [(t.name, t.dims) for t in spec.inputs] == [("window", (60, 12))]
    assert [(t.name, t.dims) for t in spec.outputs] == [("risk", (1,)), ("forecast", (6,))]
