"""STAT lanes in `medstream demo` (docs/lanes.md): this run's STAT topics, the lane each input
is published on, and the check that each lane's worker served what was published on it.

The lane is chosen at the edge as the producers choose it (producers/priority.py: the DICOM
RequestedProcedurePriority of the STAT sample, routine for everything else). Every outcome names
the lane that served it (the `lane` field of predictions and skips, the `worker.lane` header of
dead letters: `output_lane`), and each worker counts what it served in
`medstream_lane_records_total{kind,lane}`. The demo checks both against what it published: per
lane, the outcomes naming it; per kind and lane, each lane worker's counts.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping

from medstream_tools.soak.worker import http_get
from medstream_tools.top.promstats import parse_metrics, sum_by
from producers.settings import ProducerSettings
from worker.contracts import Prediction, Skip, header_lane
from worker.lanes import ROUTINE, STAT
from worker.settings import Settings

#: demo topic suffix of each kind's routine and STAT topic
KIND_TOPICS = {"scan": ("scans", "scans.stat"), "vitals": ("vitals", "vitals.stat")}
STAT_TOPICS = tuple(stat for _, stat in KIND_TOPICS.values())
SERVED_TIMEOUT_S = 30.0  # the counters move just after the outputs are acknowledged


def lane_env(topics: Mapping[str, str]) -> dict[str, str]:
    """The worker's lane settings: on (the default deployment) with this run's STAT topics."""
    return {"MEDSTREAM_LANES__ENABLED": "true",
            **{f"MEDSTREAM_{kind.upper()}__STAT_TOPIC": topics[stat]
               for kind, (_, stat) in KIND_TOPICS.items()}}


def edge_settings(settings: Settings, topics: Mapping[str, str]) -> ProducerSettings:
    """What `publish_topic` decides with: this run's topics, lanes on, the lane from the event."""
    blocks = {kind: getattr(settings, kind).model_copy(
        update={"topic": topics[routine], "stat_topic": topics[stat]})
        for kind, (routine, stat) in KIND_TOPICS.items()}
    return ProducerSettings(priority="auto", lanes=settings.lanes.model_copy(
        update={"enabled": True}), **blocks)


def topic_lane(topic: str, topics: Mapping[str, str]) -> str:
    """The lane of one of this run's input topics."""
    return STAT if topic in {topics[stat] for stat in STAT_TOPICS} else ROUTINE


def output_lane(record: Prediction | Skip | None, headers: Mapping[str, bytes]) -> str:
    """The lane an outcome names: a prediction's or skip's `lane`, else (a dead letter, `record`
    None) its `worker.lane` header; "?" when it names none."""
    lane = record.lane if record is not None else header_lane(dict(headers))
    return lane or "?"


def published(topics: Mapping[str, str], sent: Iterable[str]) -> Counter[str]:
    """"kind/lane" -> how many inputs were published there, from the topic of each."""
    kinds = {topics[name]: kind for kind, names in KIND_TOPICS.items() for name in names}
    return Counter(f"{kinds[topic]}/{topic_lane(topic, topics)}" for topic in sent)


def served(host: str, port: int) -> dict[str, float]:
    """"kind/lane" -> inputs served by the worker on `port` (its non-zero lane counters)."""
    body = http_get(f"http://{host}:{port}/metrics")[1].decode()
    counts = sum_by(parse_metrics(body, time.monotonic()).samples, "medstream_lane_records",
                    "kind", "lane")
    return {series: value for series, value in counts.items() if value}


def wait_served(host: str, ports: Mapping[str, int], expected: Counter[str]
                ) -> dict[str, dict[str, float]]:
    """Each lane's worker's counts, once each shows exactly its lane's share of `expected`
    (or after SERVED_TIMEOUT_S)."""
    want = {lane: {k: float(v) for k, v in expected.items() if k.endswith("/" + lane)}
            for lane in ports}
    deadline = time.monotonic() + SERVED_TIMEOUT_S
    while True:
        got = {lane: served(host, port) for lane, port in ports.items()}
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def _lanes(counts: Counter[str]) -> str:
    return ", ".join(f"{lane} {n}" for lane, n in sorted(counts.items())) or "nothing"


def _counts(counts: Mapping[str, float]) -> str:
    return ", ".join(f"{series.split('/')[0]} {value:.0f}"
                     for series, value in sorted(counts.items())) or "nothing"


def print_lanes(expected: Counter[str], got: Mapping[str, Mapping[str, float]],
                ports: Mapping[str, int], answered: Counter[str]) -> bool:
    """One line per lane: published vs served by that lane's worker; then published vs the
    outcomes that name each lane (`answered`: lane -> outcomes); whether they all agree."""
    print("\nlanes (chosen at the edge by producers/priority.py; served = the lane worker's "
          "medstream_lane_records_total; answered = outcomes naming the lane):")
    ok = True
    for lane, port in ports.items():
        sent = {k: float(v) for k, v in expected.items() if k.endswith("/" + lane)}
        agree = dict(got.get(lane, {})) == sent
        ok &= agree
        print(f"  {lane:<7}: published {_counts(sent)} -> {lane} worker (:{port}) served "
              f"{_counts(got.get(lane, {}))} - {'ok' if agree else 'MISMATCH'}")
    by_lane = Counter[str]()
    for series, n in expected.items():
        by_lane[series.split("/")[1]] += n
    agree = answered == by_lane
    print(f"  answered: {_lanes(answered)} (published {_lanes(by_lane)}) - "
          f"{'ok' if agree else 'MISMATCH'}")
    return ok and agree
