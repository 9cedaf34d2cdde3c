"""TritonBackend: one long-lived `tritonclient.grpc.aio` client, start-up checks, timeouts.

`start()` connects and checks the server (live, ready) and every model (ready; metadata and
config match the tensors the worker sends); mismatches raise ConfigurationError. `infer()`
maps gRPC failures to PoisonMessage (INVALID_ARGUMENT: this input) or RetryableInference
(everything else: back off and retry). The channel reconnects with the settings' backoff
(`channel_args`): with gRPC's own (1 s growing 1.6x to 120 s) a restarted Triton stayed
unused for up to ~11 s (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE, KeepAliveOptions
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from worker.errors import ConfigurationError, DeadLetterReason, PoisonMessage, RetryableInference
from worker.inference.protocol import ModelInfo, ModelSpec, TensorSpec
from worker.metrics import Metrics
from worker.security import triton_grpc_security
from worker.settings import Settings

log = logging.getLogger(__name__)

POISON_CODES = frozenset({"INVALID_ARGUMENT"})


def status_code(exc: InferenceServerException) -> str | None:
    """"StatusCode.UNAVAILABLE" -> "UNAVAILABLE"; None for client-side errors."""
    status = exc.status()
    return status.rsplit(".", 1)[-1] if status else None


def classify_error(exc: Exception) -> Exception:
    """The typed medstream error for a failed Triton call (the original when unexpected)."""
    if isinstance(exc, InferenceServerException):
        code = status_code(exc)
        if code in POISON_CODES:
            return PoisonMessage(DeadLetterReason.INFERENCE_INVALID_ARGUMENT, f"Triton rejected the input: {exc.message()}"[:300])
        if code is not None:
            return RetryableInference(code, str(exc.message())[:300])
        return exc
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return RetryableInference("DEADLINE_EXCEEDED", "client-side timeout")
    if isinstance(exc, OSError):
        return RetryableInference("CONNECTION", f"{type(exc).__name__}: {exc}")
    return exc


def channel_args(reconnect_initial_s: float, reconnect_max_s: float) -> list[tuple[str, Any]]:
    """tritonclient's own channel options (which `channel_args` replaces) plus gRPC's reconnect
    backoff. `grpc.min_reconnect_backoff_ms` stays gRPC's: it is the connect timeout (20 s)."""
    keepalive = KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.initial_reconnect_backoff_ms", round(reconnect_initial_s * 1000)),
        ("grpc.max_reconnect_backoff_ms", round(reconnect_max_s * 1000)),
    ]


def _dims(values: list[Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _matches(expected: tuple[int, ...], served: tuple[int, ...]) -> bool:
    return len(expected) == len(served) and all(
        e == -1 or s == -1 or e == s for e, s in zip(expected, served)
    )


def _check_tensors(model: str, kind: str, wanted: tuple[TensorSpec, ...],
                   served: list[dict[str, Any]], batched: bool) -> None:
    by_name = {t["name"]: t for t in served}
    for spec in wanted:
        tensor = by_name.get(spec.name)
        if tensor is None:
            raise ConfigurationError(
                f"model {model!r} has no {kind} {spec.name!r} (it has {sorted(by_name)})")
        dims = _dims(tensor.get("shape", []))
        dims = dims[1:] if batched else dims
        if tensor.get("datatype") != spec.datatype or not _matches(spec.dims, dims):
            raise ConfigurationError(
                f"model {model!r} {kind} {spec.name!r} is {tensor.get('datatype')} {list(dims)}, "
                f"the worker uses {spec.datatype} {list(spec.dims)}")


def check_model(spec: ModelSpec, metadata: dict[str, Any], config: dict[str, Any]) -> ModelInfo:
    """Validate Triton's metadata + config (as JSON dicts) against `spec`; ModelInfo or error."""
    config = config.get("config", config)
    max_batch = int(config.get("max_batch_size", 0))
    if max_batch < 1:
        raise ConfigurationError(f"model {spec.name!r} must batch (max_batch_size >= 1)")
    _check_tensors(spec.name, "input", spec.inputs, metadata.get("inputs", []), True)
    _check_tensors(spec.name, "output", spec.outputs, metadata.get("outputs", []), True)
    params = config.get("parameters", {})
    labels_text = params.get("labels", {}).get("string_value", "")
    labels = tuple(s.strip() for s in labels_text.split(",") if s.strip())
    versions = sorted(metadata.get("versions", []) or ["1"], key=lambda v: int(v) if v.isdigit() else 0)
    version = versions[-1]
    sha = params.get("model_sha256", {}).get("string_value", "")
    declared = {k: str(v.get("string_value", "")) for k, v in params.items() if isinstance(v, dict)}
    dims = {t["name"]: _dims(t.get("shape", []))[1:] for t in metadata.get("inputs", [])}
    return ModelInfo(spec.name, f"{version}+sha256.{sha[:12]}" if sha else version, max_batch,
                     labels, declared, dims)


class TritonBackend:
    """InferenceBackend on Triton's gRPC endpoint; create, start, and stop it on one loop."""

    def __init__(self, url: str, *, timeout_s: float, metrics: Metrics,
                 channel: dict[str, Any] | None = None, priority: int = 0) -> None:
        self._url = url
        self._priority = priority  # every request's (0: the model's default; docs/lanes.md)
        self._timeout_s = timeout_s
        self._metrics = metrics
        self._channel = channel or {}  # client arguments: TLS, channel_args (from_settings)
        self._client: grpcclient.InferenceServerClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics,
                      priority: int = 0) -> TritonBackend:
        """The worker's backend: URL, timeout, TLS and reconnect backoff from `settings`."""
        reconnect = channel_args(settings.triton_reconnect_initial_s,
                                 settings.triton_reconnect_max_s)
        return cls(settings.triton_grpc_url, timeout_s=settings.triton_timeout_s,
                   metrics=metrics, priority=priority,
                   channel={**triton_grpc_security(settings), "channel_args": reconnect})

    async def connect(self) -> None:
        """Create the long-lived client on the running event loop (no network round trip)."""
        self._require()

    async def start(self, specs: list[ModelSpec], *,
                    ready_wait_s: float = 0.0) -> dict[str, ModelInfo]:
        """Connect and check the server and every model; ConfigurationError when unusable.

        A live server that is not ready (loading or unloading a model: strict readiness) is
        polled for up to `ready_wait_s` before that counts as unusable.
        """
        await self.connect()
        try:
            await self._wait_ready(ready_wait_s)
            return await self._check(specs)
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self, wait_s: float) -> None:
        client, loop = self._require(), asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            with contextlib.suppress(Exception):  # not up yet: `_check` names what is wrong
                if await client.is_server_ready(client_timeout=self._timeout_s):
                    return
            await asyncio.sleep(0.5)

    async def _check(self, specs: list[ModelSpec]) -> dict[str, ModelInfo]:
        client = self._require()
        t = self._timeout_s
        try:
            if not await client.is_server_live(client_timeout=t):
                raise ConfigurationError(f"Triton at {self._url} is not live")
            if not await client.is_server_ready(client_timeout=t):
                raise ConfigurationError(f"Triton at {self._url} is not ready")
            infos = {}
            for spec in specs:
                if not await client.is_model_ready(spec.name, client_timeout=t):
                    raise ConfigurationError(
                        f"model {spec.name!r} is not ready on Triton at {self._url} (not loaded?)")
                metadata = await client.get_model_metadata(spec.name, as_json=True, client_timeout=t)
                config = await client.get_model_config(spec.name, as_json=True, client_timeout=t)
                infos[spec.name] = check_model(spec, metadata, config)
        except InferenceServerException as exc:
            raise ConfigurationError(f"Triton at {self._url} unusable: {exc}") from exc
        return infos

    async def stop(self) -> None:
        """Close the gRPC channel."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def _require(self) -> grpcclient.InferenceServerClient:
        """The client, created on first use: a grpc.aio channel belongs to the current loop."""
        if self._client is None:
            self._client = grpcclient.InferenceServerClient(self._url, **self._channel)
        return self._client

    async def is_server_ready(self) -> bool:
        """True when the server answers and reports itself ready."""
        try:
            return bool(await self._require().is_server_ready(client_timeout=self._timeout_s))
        except InferenceServerException:
            return False

    async def is_ready(self, model: str) -> bool:
        """True when the server answers and reports `model` ready."""
        try:
            return bool(await self._require().is_model_ready(model, client_timeout=self._timeout_s))
        except InferenceServerException:
            return False

    async def infer(self, model: str, inputs: dict[str, np.ndarray], *,
                    timeout_s: float | None = None) -> dict[str, np.ndarray]:
        """One request with a timeout (the backend's unless given); typed errors (see module
        docstring)."""
        client = self._require()
        request = []
        for name, array in inputs.items():
            tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            request.append(tensor)
        gauge = self._metrics.inflight_requests.labels(model)
        gauge.inc()
        started = time.perf_counter()
        try:
            result = await client.infer(model, request, client_timeout=timeout_s or self._timeout_s,
                                        priority=self._priority)
        except Exception as exc:
            error = classify_error(exc)
            if error is exc:
                raise
            raise error from exc
        finally:
            gauge.dec()
        self._metrics.inference_seconds.labels(model).observe(time.perf_counter() - started)
        return {out.name: result.as_numpy(out.name) for out in result.get_response().outputs}
