"""`medstream produce scans PATH...`: publish DICOM files (files, folders, zips) to `scans`."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

from producers.claimcheck import ClaimCheckStore
from producers.deid.pseudonym import Pseudonymizer
from producers.metrics import ProducerMetrics
from producers.pacing import Pacer
from producers.priority import publish_topic
from producers.progress import Progress, Tally, delivery_callback, publishing
from producers.publisher import Publisher
from producers.scan_events import build_scan_event
from producers.scan_sources import iter_inputs
from producers.settings import ProducerSettings
from worker.errors import PoisonMessage

SOURCE = "files"


def produce_scans(
    paths: Sequence[Path],
    settings: ProducerSettings,
    publisher: Publisher,
    metrics: ProducerMetrics,
    *,
    pseudonyms: Pseudonymizer | None,
    rate: float | None = None,
    loop: bool = False,
    limit: int | None = None,
    progress: Progress | None = None,
) -> Tally:
    """Publish every DICOM file under `paths`; returns the run's counts.

    Unusable inputs are reported, counted and skipped. `loop` repeats the inputs until
    interrupted (or `limit` inputs were read); `rate` caps messages per second.
    """
    tally, pacer = Tally(), Pacer(rate)
    progress = progress or Progress("scans")
    store = ClaimCheckStore(settings.claim_check_dir)
    dones = {t: delivery_callback(tally, metrics, SOURCE, t)
             for t in filter(None, (settings.scan.topic, settings.scan.stat_topic))}
    rounds = itertools.count() if loop else range(1)
    with publishing(tally, publisher, progress):
        for _ in rounds:
            for name, data in iter_inputs(paths):
                if limit is not None and tally.seen >= limit:
                    return tally
                tally.add("seen")
                metrics.received.labels(SOURCE).inc()
                if isinstance(data, OSError):
                    _reject(tally, metrics, progress, name, "unreadable", str(data))
                    continue
                try:
                    event = build_scan_event(
                        data,
                        pseudonyms=pseudonyms,
                        max_message_bytes=settings.max_message_bytes,
                        store=store,
                        rules=settings.lanes.stat_rules,
                    )
                except PoisonMessage as exc:
                    _reject(tally, metrics, progress, name, exc.reason, str(exc))
                    continue
                except OSError as exc:  # the claim-check store is not writable
                    _reject(tally, metrics, progress, name, "claim_check_store", str(exc))
                    continue
                pacer.wait()
                if event.claim_checked:
                    tally.add("claim_checked")
                    metrics.claim_checks.labels(SOURCE).inc()
                topic = publish_topic(settings, settings.scan, event.priority,
                                      metrics.unknown_priority.labels(SOURCE).inc)
                publisher.send(topic, event.key, event.value, event.headers, on_done=dones[topic])
                progress.update(tally)
    return tally


def _reject(
    tally: Tally, metrics: ProducerMetrics, progress: Progress, name: str, reason: str, message: str
) -> None:
    tally.reject(reason)
    metrics.rejected.labels(SOURCE, reason).inc()
    progress.report(name, reason, message)
