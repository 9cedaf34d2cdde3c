"""`medstream produce vitals`: windows of CSV, MIT-BIH or simulated series -> `vitals`."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import replace

from producers.deid.pseudonym import Pseudonymizer
from producers.metrics import ProducerMetrics
from producers.pacing import Pacer
from producers.progress import Progress, Tally, delivery_callback, publishing
from producers.publisher import Publisher
from producers.vitals_windows import Series, Window, encode_window, windows


def deidentify_window(window: Window, pseudonyms: Pseudonymizer | None) -> Window:
    """Patient id -> keyed pseudonym, device id -> keyed device token (identity when off)."""
    if pseudonyms is None:
        return window
    return replace(
        window,
        patient_id=pseudonyms.patient(window.patient_id),
        device_id="DEV-" + pseudonyms.token("device", window.device_id),
    )


def interleaved(series: Sequence[Series], length: int, hop: int) -> Iterator[Window]:
    """Every series' windows, merged in window start order (a multi-patient stream)."""
    return heapq.merge(*(windows(s, length, hop) for s in series), key=lambda w: w.start)


def produce_vitals(
    series: Sequence[Series],
    publisher: Publisher,
    metrics: ProducerMetrics,
    *,
    topic: str,
    source: str,
    pseudonyms: Pseudonymizer | None,
    window_len: int,
    hop: int,
    rate: float | None = None,
    progress: Progress | None = None,
) -> Tally:
    """Publish the windows of `series` keyed by patient (pseudonym); returns the run's counts.

    All-missing windows are not published (the worker would dead-letter them); they are
    counted as rejected `all_missing`.
    """
    tally, pacer = Tally(), Pacer(rate)
    progress = progress or Progress(f"vitals ({source})")

    done = delivery_callback(tally, metrics, source, topic)
    with publishing(tally, publisher, progress):
        for window in interleaved(series, window_len, hop):
            tally.add("seen")
            metrics.received.labels(source).inc()
            if window.all_missing:
                tally.reject("all_missing")
                metrics.rejected.labels(source, "all_missing").inc()
                continue
            window = deidentify_window(window, pseudonyms)
            pacer.wait()
            publisher.send(
                topic,
                window.patient_id.encode(),
                encode_window(window),
                [("content-type", b"application/json")],
                on_done=done,
            )
            progress.update(tally)
    return tally
