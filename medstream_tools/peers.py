"""The receiving ends of `medstream deliver`, for tests and demos, counting what arrives:

- `StoreScp`: dcmtk's `storescp` (a PACS storage SCP nobody here wrote), one file per SOP
  Instance UID (a re-send overwrites it) and one line per reception in `receptions.log`;
- `MllpPeer`: hl7apy's `MLLPServer`; each ORU^R01 is parsed with hl7apy's STRICT validation
  and answered AA (MSA-2 = its MSH-10), or AE with the validation error;
- `FhirPeer`: an HTTP server with FHIR's transaction and conditional-create semantics
  (`ifNoneExist` matched: 200 and nothing created; else 201), every resource parsed with
  fhir.resources R4B, required status codes and in-Bundle references checked, bearer token
  enforced when set.
`mode` switches a peer to misbehave: "garbage", "reject", "down" (FHIR 503; MLLP closes),
"slow" (MLLP answers after 30 s); `delay_s` slows every answer (to kill a sender mid-stream);
`FhirPeer.refuse_subject` refuses (422) transactions about that patient identifier.
Run `python -m medstream_tools.peers DIR` to serve all three on their default
ports until interrupted (the demo's peers; docs/delivery.md).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.mllp import AbstractErrorHandler, AbstractHandler, MLLPServer
from hl7apy.parser import parse_message
from pydantic import ValidationError

STATUSES = {
    "DiagnosticReport": {"registered", "partial", "preliminary", "final", "amended", "corrected",
                         "appended", "cancelled", "entered-in-error", "unknown"},
    "Observation": {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                    "entered-in-error", "unknown"},
    "RiskAssessment": {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                       "entered-in-error", "unknown"},
    "Device": {"active", "inactive", "entered-in-error", "unknown"},
}


class StoreScp:
    """`storescp` on 127.0.0.1:port with AE title `ae`, storing into `folder`."""

    def __init__(self, folder: Path, port: int, ae: str = "PACS", delay_s: float = 0.0) -> None:
        self.folder, self.port, self.ae, self.delay_s = folder, port, ae, delay_s
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder.parent / f"{folder.name}-receptions.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> StoreScp:
        self._proc = subprocess.Popen(  # -xs: the response waits for the command
            ["storescp", "-aet", self.ae, "-od", str(self.folder), "-xs", "-xcr",
             f"sleep {self.delay_s}; echo #f >> {self.log}", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=10)

    def files(self) -> list[Path]:
        """The stored instances (one per SOP Instance UID)."""
        return sorted(p for p in self.folder.iterdir() if p.is_file())

    def receptions(self) -> int:
        """C-STOREs received, repeats included."""
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0


def _ack(incoming: str, code: str, text: str = "") -> str:
    """An ACK built with hl7apy, framed for MLLP."""
    request = parse_message(incoming, find_groups=False)
    ack = Message("ACK", version="2.5")
    ack.msh.msh_3, ack.msh.msh_5 = "EHR", request.msh.msh_3.value or ""
    ack.msh.msh_9, ack.msh.msh_10, ack.msh.msh_11 = "ACK^R01^ACK", "A" + str(time.time_ns()), "P"
    ack.msa.msa_1, ack.msa.msa_2 = code, request.msh.msh_10.value
    if text:
        ack.msa.msa_3 = text[:80].replace("|", " ").replace("^", " ").replace("&", " ")
    return "\x0b" + ack.to_er7() + "\x1c\x0d"


class MllpPeer:
    """hl7apy's MLLP server on 127.0.0.1:port; `received` holds every valid message's MSH-10."""

    def __init__(self, port: int, delay_s: float = 0.0) -> None:
        self.port, self.mode, self.delay_s = port, "ok", delay_s
        self.received: list[str] = []
        self.refused: list[str] = []
        peer = self

        class Oru(AbstractHandler):
            def reply(self) -> str:
                time.sleep(peer.delay_s)
                if peer.mode == "slow":
                    time.sleep(30)
                if peer.mode == "garbage":
                    return "\x0bthis is not HL7\x1c\x0d"
                if peer.mode == "down":
                    raise ConnectionAbortedError("peer down")  # hl7apy closes the connection
                try:
                    message = parse_message(self.incoming_message,
                                            validation_level=VALIDATION_LEVEL.STRICT,
                                            find_groups=True)
                    message.validate()
                except Exception as exc:  # noqa: BLE001 - any validation failure is an AE
                    peer.refused.append(type(exc).__name__)
                    return _ack(self.incoming_message, "AE", f"invalid: {type(exc).__name__}")
                if peer.mode == "reject":
                    return _ack(self.incoming_message, "AR", "unknown patient")
                peer.received.append(message.msh.msh_10.value)
                return _ack(self.incoming_message, "AA")

        class Error(AbstractErrorHandler):
            def reply(self) -> str:
                if isinstance(self.exc, ConnectionAbortedError):
                    return ""  # "down": close without an answer
                return _ack(self.incoming_message, "AR", type(self.exc).__name__)

        self._server = MLLPServer("127.0.0.1", port, {"ORU^R01^ORU_R01": (Oru,), "ERR": (Error,)},
                                  timeout=60)
        self._server.daemon_threads = True  # a "slow" answer must not hold up stop()

    def start(self) -> MllpPeer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def distinct(self) -> int:
        return len(set(self.received))


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


class FhirPeer:
    """A FHIR transaction endpoint at http://127.0.0.1:port/ (module doc)."""

    def __init__(self, port: int, token: str | None = None, delay_s: float = 0.0) -> None:
        self.port, self.token, self.mode, self.delay_s = port, token, "ok", delay_s
        self.refuse_subject: str | None = None
        self.store: dict[str, dict[str, dict]] = {}  # type -> identifier -> resource
        self.answers: Counter[str] = Counter()  # "201", "200", "422", ...
        self._lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = peer.transaction(self.headers.get("Authorization"), body)
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> FhirPeer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, resource_type: str) -> int:
        with self._lock:
            return len(self.store.get(resource_type, {}))

    def transaction(self, auth: str | None, body: bytes) -> tuple[int, Any]:
        """Answer one POST: (status, JSON body or raw bytes)."""
        status, answer = self._answer(auth, body)
        with self._lock:
            self.answers[str(status)] += 1
        return status, answer

    def _answer(self, auth: str | None, body: bytes) -> tuple[int, Any]:
        time.sleep(self.delay_s)
        if self.token and auth != f"Bearer {self.token}":
            return 401, _outcome("security", "missing or wrong bearer token")
        if self.mode == "down":
            return 503, _outcome("transient", "maintenance")
        if self.mode == "garbage":
            return 200, b"<html>proxy says hello</html>"
        try:
            bundle = Bundle.model_validate_json(body)
        except (ValidationError, ValueError) as exc:
            return 400, _outcome("structure", f"not a valid R4 Bundle: {str(exc)[:200]}")
        if self.mode == "reject" or (self.refuse_subject and self.refuse_subject in body.decode()):
            return 422, _outcome("business-rule", "resource refused by local policy")
        problem = _check(bundle)
        if problem:
            return 422, _outcome("invalid", problem)
        return 200, self._apply(bundle)

    def _apply(self, bundle: Bundle) -> dict:
        entries = []
        with self._lock:
            for entry in bundle.entry:
                kind = entry.resource.get_resource_type()
                identifier = entry.request.ifNoneExist.split("|", 1)[1]
                existing = self.store.setdefault(kind, {})
                status = "200 OK" if identifier in existing else "201 Created"
                existing.setdefault(identifier, json.loads(entry.resource.model_dump_json()))
                entries.append({"response": {"status": status,
                                             "location": f"{kind}/{identifier}/_history/1"}})
                self.answers[status.split()[0] + "-entry"] += 1
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}


def _check(bundle: Bundle) -> str | None:
    """The first rule the transaction breaks, else None."""
    if bundle.type != "transaction":
        return "Bundle.type must be transaction"
    urls = {entry.fullUrl for entry in bundle.entry}
    for entry in bundle.entry:
        kind = entry.resource.get_resource_type()
        if entry.request is None or not (entry.request.ifNoneExist or "").startswith("identifier="):
            return f"{kind}: conditional create on identifier required"
        status = getattr(entry.resource, "status", None)
        if kind in STATUSES and status is not None and status not in STATUSES[kind]:
            return f"{kind}.status {status!r} not in the required value set"
        for ref in _references(json.loads(entry.resource.model_dump_json())):
            if ref.startswith("urn:uuid:") and ref not in urls:
                return f"{kind}: reference {ref} not in the Bundle"
    return None


def _outcome(code: str, text: str) -> dict:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


if __name__ == "__main__":
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".medstream/delivery-peers")
    peers = [FhirPeer(8090).start(), MllpPeer(2576).start(), StoreScp(root / "pacs", 11113).start()]
    print("FHIR http://127.0.0.1:8090/  MLLP 127.0.0.1:2576  PACS 127.0.0.1:11113 AE PACS",
          flush=True)
    try:
        while True:
            time.sleep(5)
            fhir, mllp, pacs = peers
            print(f"FHIR DiagnosticReports {fhir.count('DiagnosticReport')} RiskAssessments "
                  f"{fhir.count('RiskAssessment')} | HL7 ORU {mllp.distinct()} | PACS SR "
                  f"{len(pacs.files())}", flush=True)
    except KeyboardInterrupt:
        for peer in peers:
            peer.stop()
