"""One exception root for the worker; every failure is classified by type.

- `PoisonMessage`: the input itself is bad. It goes to the dead-letter topic with `reason`.
- `RetryableInference`: the inference service is down/overloaded. Back off, retry, never commit.
- `ConfigurationError`: the worker cannot start (bad settings, model mismatch). Fail fast.
"""

from __future__ import annotations


class MedstreamError(Exception):
    """Root of every exception medstream raises on purpose."""


class ConfigurationError(MedstreamError):
    """Start-up cannot continue: invalid settings, missing model, tensor mismatch."""


class PoisonMessage(MedstreamError):
    """A message that can never be served; it becomes a dead letter.

    `reason` is a short, bounded-cardinality slug used as the `reason` metric label and the
    `error.type` header (e.g. "dicom_decode", "json_decode", "schema_version", "shape",
    "all_missing", "oversize", "inference_invalid_argument"). The message text must not
    contain patient identifiers.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RetryableInference(MedstreamError):
    """Inference failed for a reason that may pass (UNAVAILABLE, DEADLINE_EXCEEDED, overload)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
