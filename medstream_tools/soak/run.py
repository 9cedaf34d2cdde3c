"""`make soak`: a bounded soak run - steady load on a private stack, RSS and lag sampled.

Starts a private Tansu + Triton (medstream_tools/soak/stack.py: the chaos suite's ports,
MEDSTREAM_CHAOS_*), one worker on fresh topics and the chaos suite's steady load (real DICOMs +
vital windows + a few poison messages) for `--minutes`. Every `--every` seconds it samples the worker's RSS, its
consumer lag (medstream_consumer_lag) and what it consumed. At the end it checks that every
input has a prediction or a dead letter, fits the RSS and lag trends over the second half of
the run, prints the verdict and writes it between the soak markers of docs/reliability.md.
Exit status 0 when nothing was lost, RSS is flat and lag is not growing; 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from medstream_tools.localstack.stack import broker_up, down, triton_up
from medstream_tools.soak.accounting import settle
from medstream_tools.soak.fixture_scans import fixture_rules
from medstream_tools.soak.load import SteadyLoad
from medstream_tools.soak.stack import STATE_DIR, WEB_PORT, private_stack, run_environment
from medstream_tools.soak.worker import ROOT, WorkerProcess
from medstream_tools.top.promstats import sum_by

DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
RSS_SLOPE_LIMIT = 2.0  # MiB per minute over the second half
LAG_SLOPE_LIMIT = 1.0  # messages per second over the second half


def slope_per_s(times: list[float], values: list[float]) -> float:
    """Least-squares slope of `values` over `times` (0 for fewer than 3 points)."""
    if len(times) < 3:
        return 0.0
    return float(np.polyfit(np.array(times), np.array(values), 1)[0])


def run(minutes: float, every_s: float, vitals_per_s: float, scans_per_s: float) -> dict:
    """The soak itself; returns the figures for the report."""
    cfg = private_stack()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    broker_up(cfg)
    triton_up(cfg)
    settings, env = run_environment("soak", cfg)
    # the load's chest radiographs go to the fast fixture model, its other scans are skipped
    env["MEDSTREAM_ROUTING__RULES"] = str(fixture_rules(STATE_DIR / "soak-routing.yaml"))
    worker = WorkerProcess("soak-w0", env, WEB_PORT, STATE_DIR / settings.app_id).start()
    samples: list[tuple[float, float, float, float]] = []
    try:
        worker.wait_ready()
        load = SteadyLoad(settings.kafka_bootstrap, settings.scan.topic, settings.vitals.topic,
                          vitals_per_s, scans_per_s).start()
        started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < minutes * 60:
                time.sleep(every_s)
                m = worker.metrics()
                lag = sum(sum_by(m, "medstream_consumer_lag", "topic").values())
                consumed = sum(sum_by(m, "medstream_messages_consumed", "kind").values())
                samples.append((elapsed, worker.rss_mib(), lag, consumed))
                print(f"soak t={elapsed:6.0f}s rss={samples[-1][1]:6.1f} MiB lag={lag:5.0f} "
                      f"consumed={consumed:7.0f}", flush=True)
        finally:
            inputs = load.stop()
        outputs = (settings.topic_predictions, settings.topic_deadletter)
        counts = settle("soak", settings.kafka_bootstrap, outputs, inputs, timeout_s=300)
    finally:
        worker.stop()
        down(cfg)
    second = [s for s in samples if s[0] >= samples[-1][0] / 2]
    t = [s[0] for s in second]
    return {
        "minutes": minutes, "vitals_per_s": vitals_per_s, "scans_per_s": scans_per_s,
        "counts": counts,
        "rss_first": samples[0][1], "rss_max": max(s[1] for s in samples), "rss_last": samples[-1][1],
        "rss_slope_mib_min": 60 * slope_per_s(t, [s[1] for s in second]),
        "lag_max": max(s[2] for s in samples), "lag_last": samples[-1][2],
        "lag_slope_per_s": slope_per_s(t, [s[2] for s in second]),
        "throughput": samples[-1][3] / samples[-1][0],
    }


def verdict(r: dict) -> tuple[bool, str]:
    """(passed, the markdown block for docs/reliability.md)."""
    c = r["counts"]
    ok = (c.missing == 0 and c.conflicting == 0 and r["rss_slope_mib_min"] < RSS_SLOPE_LIMIT
          and r["lag_slope_per_s"] < LAG_SLOPE_LIMIT)
    text = "\n".join([
        (f"Last `make soak` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
         f"{r['minutes']:g} min, {r['vitals_per_s']:g} vital windows/s + {r['scans_per_s']:g} "
         f"scans/s, one worker, Tansu + Triton on CPU): **{'PASS' if ok else 'FAIL'}**"),
        "",
        "| figure | value |",
        "|---|---|",
        f"| inputs / predictions / dead letters | {c.inputs} / {c.predictions} / {c.dead_letters} |",
        f"| missing / conflicting duplicates / duplicates | {c.missing} / {c.conflicting} / {c.duplicates} |",
        f"| worker RSS first / max / last | {r['rss_first']:.0f} / {r['rss_max']:.0f} / {r['rss_last']:.0f} MiB |",
        f"| RSS trend, second half | {r['rss_slope_mib_min']:+.2f} MiB/min (limit {RSS_SLOPE_LIMIT}) |",
        f"| consumer lag max / last | {r['lag_max']:.0f} / {r['lag_last']:.0f} messages |",
        f"| lag trend, second half | {r['lag_slope_per_s']:+.3f} messages/s (limit {LAG_SLOPE_LIMIT}) |",
        f"| consumed | {r['throughput']:.1f} messages/s |",
    ])
    return ok, text


def write_doc(block: str) -> None:
    """Replace the text between the soak markers of docs/reliability.md."""
    doc = DOC.read_text()
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=10.0, help="sampling period, seconds")
    parser.add_argument("--vitals-per-s", type=float, default=20.0)
    parser.add_argument("--scans-per-s", type=float, default=4.0)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/reliability.md")
    args = parser.parse_args()
    ok, block = verdict(run(args.minutes, args.every, args.vitals_per_s, args.scans_per_s))
    print(block)
    if not args.no_doc:
        write_doc(block)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
