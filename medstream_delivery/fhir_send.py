"""POST a transaction Bundle to the FHIR server and classify the answer.

Bearer token and/or mutual TLS; the server is verified against the system CAs or a CA file.
200 with a transaction-response Bundle whose every entry is 2xx: delivered (201 created, or
200 when `ifNoneExist` matched: a re-delivery). 400/404/405/409/410/412/422: rejected with the
OperationOutcome text. Anything else (other statuses, garbage, timeout, TLS or connection
failure): TargetUnavailable.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from medstream_delivery.outcomes import Rejected, RejectReason, TargetUnavailable

FHIR_JSON = "application/fhir+json"
PERMANENT = frozenset({400, 404, 405, 409, 410, 412, 422})
MAX_ANSWER_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class FhirClient:
    """Where and how to POST: base URL, credentials, timeout."""

    base_url: str
    timeout_s: float
    bearer_token: str | None = None
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None

    def context(self) -> ssl.SSLContext | None:
        """The TLS context for https (None for http)."""
        if not self.base_url.startswith("https:"):
            return None
        ctx = ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.certfile and self.keyfile:
            ctx.load_cert_chain(str(self.certfile), str(self.keyfile))
        return ctx

    def post(self, bundle: Bundle, ctx: ssl.SSLContext | None) -> list[str]:
        """Send the transaction; the entry statuses on success, else raise (module doc)."""
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
        if self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        request = urllib.request.Request(self.base_url, data=bundle.model_dump_json().encode(),
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=ctx) as answer:
                status, body = answer.status, answer.read(MAX_ANSWER_BYTES)
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read(MAX_ANSWER_BYTES)
        except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, timeout,
            # TLS, reset, a status line that is not HTTP
            raise TargetUnavailable(f"FHIR server: {type(exc).__name__}: {_reason(exc)}") from exc
        return _classify(status, body, len(bundle.entry or ()))


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", exc))[:200]


def _classify(status: int, body: bytes, sent: int) -> list[str]:
    if status in PERMANENT:
        raise Rejected(RejectReason.TARGET_REJECTED, f"HTTP {status}: {outcome_text(body)}")
    if status != 200:
        raise TargetUnavailable(f"FHIR server answered HTTP {status}")
    try:
        answer = Bundle.model_validate_json(body)
    except (ValidationError, ValueError) as exc:
        raise TargetUnavailable("FHIR server answered 200 without a valid Bundle") from exc
    statuses = [str(entry.response.status) for entry in answer.entry or () if entry.response]
    if answer.type != "transaction-response" or len(statuses) != sent:
        raise TargetUnavailable("FHIR server's answer is not the transaction-response expected")
    if not all(s.split()[0].startswith("2") for s in statuses):
        raise TargetUnavailable(f"FHIR transaction answered entry statuses {sorted(set(statuses))}")
    return statuses


def outcome_text(body: bytes) -> str:
    """The diagnostics of an OperationOutcome answer, else the start of the body."""
    try:
        issues = json.loads(body).get("issue") or []
        texts = [i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code")
                 for i in issues if isinstance(i, dict)]
        if any(texts):
            return "; ".join(str(t) for t in texts if t)
    except (ValueError, AttributeError):
        pass
    return body[:200].decode("utf-8", "replace")
