"""Delivery in `medstream demo`: the three local peers and `medstream deliver sr|hl7|fhir`.

Starts dcmtk's storescp (into a temporary folder), an MLLP receiver and a FHIR server
(medstream_tools.peers), runs each `medstream deliver TARGET --limit N` on the demo's study and
alert topics until it has committed every record, then prints what each peer accepted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path

from kafka import KafkaConsumer

from medstream_tools.peers import FhirPeer, MllpPeer, StoreScp
from medstream_tools.ports import free_port
from worker.settings import Settings

DELIVER_TIMEOUT_S = 90.0


def _deliver(settings: Settings, target: str, limit: int, env: dict[str, str], log: Path) -> int:
    """Run one `medstream deliver TARGET --limit N`; returns its exit status (-1: timed out)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "worker.cli", "deliver", target,
                                 "--limit", str(limit)], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **env,
                                     "MEDSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                                     "MEDSTREAM_DELIVERY__WEB_PORT": str(free_port())})
    try:
        return proc.wait(timeout=DELIVER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
        return -1


def _validate(path: Path) -> str:
    """dciodvfy's verdict on one SR file (absent tool: said so)."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        return "dciodvfy not installed, not validated"
    run = subprocess.run([tool, str(path)], check=False, capture_output=True, text=True, timeout=60)
    errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
    return "dciodvfy: no errors" if not errors else f"dciodvfy: {len(errors)} error(s): {errors[0]}"


def refusals(settings: Settings, topic: str) -> Counter[tuple[str, str]]:
    """(target, reason) -> count of the delivery dead letters on `topic`."""
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=3000)
    try:
        headers = [dict(m.headers or []) for m in consumer]
    finally:
        consumer.close()
    return Counter((h.get("target", b"?").decode(), h.get("error.message", b"?").decode())
                   for h in headers)


def run_delivery(settings: Settings, topics: dict[str, str], studies: int, alerts: int) -> bool:
    """Deliver `studies` results (+ `alerts` alert records) to the local peers; prints a line per
    target and returns whether all three accepted everything."""
    folder = Path(tempfile.mkdtemp(prefix="medstream-demo-pacs-"))
    pacs, mllp, fhir = StoreScp(folder / "pacs", free_port()), MllpPeer(free_port()), FhirPeer(free_port())
    log = settings.state_dir / "demo-deliver.log"
    env = {"MEDSTREAM_DELIVERY__STUDIES_TOPIC": topics["studies"],
           "MEDSTREAM_DELIVERY__ALERTS_TOPIC": topics["alerts"],
           "MEDSTREAM_DELIVERY__DEADLETTER_TOPIC": topics["delivery-deadletter"],
           "MEDSTREAM_DELIVERY__GROUP_PREFIX": f"medstream-demo-{uuid.uuid4().hex[:8]}",
           "MEDSTREAM_DELIVERY__RETRY_INITIAL_S": "0.2", "MEDSTREAM_DELIVERY__RETRY_MAX_S": "1",
           "MEDSTREAM_PACS__PORT": str(pacs.port), "MEDSTREAM_PACS__CALLED_AE": pacs.ae,
           "MEDSTREAM_MLLP__PORT": str(mllp.port), "MEDSTREAM_FHIR__BASE_URL": fhir.url}
    print(f"\ndelivery to local peers (log: {log}):")
    for peer in (pacs, mllp, fhir):
        peer.start()
    try:
        codes = {target: _deliver(settings, target, limit, env, log)
                 for target, limit in (("sr", studies), ("hl7", studies + alerts),
                                       ("fhir", studies + alerts))}
        files = pacs.files()
        verdicts = [_validate(path) for path in files]
        print(f"  sr   (exit {codes['sr']}): {len(files)} SR stored in {folder / 'pacs'}"
              + (f" - {verdicts[0]}" if verdicts else ""))
        print(f"  hl7  (exit {codes['hl7']}): {mllp.distinct()} ORU^R01 acknowledged AA, "
              f"{len(mllp.refused)} refused")
        print(f"  fhir (exit {codes['fhir']}): {fhir.answers['200']} transaction Bundle(s) "
              f"accepted, {fhir.answers['201-entry']} resources created (201), "
              f"{fhir.answers['200-entry']} already there (200)")
        for (target, reason), n in sorted(refusals(settings, topics["delivery-deadletter"]).items()):
            print(f"  {target}: {n} record(s) refused to the delivery dead letter: {reason}")
    finally:
        for peer in (pacs, mllp, fhir):
            peer.stop()
    return (all(c == 0 for c in codes.values()) and bool(files) and mllp.distinct() > 0
            and fhir.answers["201-entry"] > 0 and all(c.startswith("20") for c in fhir.answers) and all("no errors" in v or "not installed" in v
                                                    for v in verdicts))
