"""`medstream bench --stat`: STAT scans' latency under a routine backlog (docs/lanes.md).

Three phases, each with a fresh `medstream worker` and fresh topics on the local stack, in one
run: `idle` (STAT lanes on, STAT scans, no backlog), `lanes` (STAT scans on the STAT topic while
a routine backlog drains) and `fifo` (lanes off: the same STAT scans on the routine topic behind
the same backlog). The scans are the bench corpus (a real CT file stamped as a PA chest
radiograph, corpus.py) routed by the bench's rules to the measured scan model (`scan_cnn`).
STAT latency runs from each scan's intended send time (open loop) to its prediction's Kafka
timestamp; routine throughput is counted while the STAT scans flow, and over the whole drain.
Worker settings from the environment (MEDSTREAM_*) apply to every phase's worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from medstream_tools.bench import e2e, load, machine, stats
from medstream_tools.bench.corpus import scan_messages
from medstream_tools.bench.stack import Stack, create_bench_topics, delete_topics, local_stack
from worker.lanes import STAT_APP_SUFFIX
from worker.settings import Settings

log = logging.getLogger(__name__)
SIZE = "ct128"
PHASES = ("idle", "lanes", "fifo")


@dataclass(frozen=True)
class StatPlan:
    """How much routine backlog, and how many STAT scans at which rate."""

    backlog: int = 5000
    stat_count: int = 40
    stat_rate: float = 2.0  # STAT scans per second
    timeout_s: float = 600.0


async def _wait_ready(urls: list[str], worker: e2e.WorkerProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while any(e2e.scrape(url).get("medstream_ready{}") != 1.0 for url in urls):
        worker.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the workers were not ready within {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


def routine_rate(produced: list[float], start: float, end: float) -> float:
    """Routine predictions per second produced within [start, end]."""
    return sum(start <= t <= end for t in produced) / max(end - start, 1e-9)


async def phase(name: str, stack: Stack, plan: StatPlan) -> dict:
    """One phase: its backlog (none when idle), then STAT scans at plan.stat_rate; its figures."""
    settings = stack.settings
    lanes, backlog = name != "fifo", name != "idle"
    prefix = f"bench-stat-{name}-{uuid.uuid4().hex[:6]}"
    topics = e2e.Topics.fresh(prefix)
    stat_topics = {"SCAN": f"{prefix}-scans-stat", "VITALS": f"{prefix}-vitals-stat"}
    names = topics.names() + (list(stat_topics.values()) if lanes else [])
    create_bench_topics(settings, names, settings.topic_partitions)
    routine = scan_messages(SIZE, plan.backlog) if backlog else []
    stat = scan_messages(SIZE, plan.stat_count)
    bootstrap, max_bytes = settings.kafka_bootstrap, settings.max_message_bytes
    env = {"MEDSTREAM_LANES__ENABLED": "true",
           **{f"MEDSTREAM_{k}__STAT_TOPIC": v for k, v in stat_topics.items()}} if lanes else {}
    worker = e2e.WorkerProcess(settings, topics, f"{prefix}-worker",
                               settings.state_dir / f"bench-worker-stat-{name}.log", extra_env=env)
    urls = [worker.metrics_url] + ([worker.metrics_url.replace(
        f":{worker.web_port}/", f":{worker.web_port + 1}/")] if lanes else [])
    collector = load.Collector(bootstrap, topics.predictions, topics.deadletter)
    load_before = os.getloadavg()
    try:
        if routine:
            await load.prefill(bootstrap, topics.scans, routine, max_bytes)
        async with e2e.Session(settings, worker, collector, stack.triton_pid) as session:
            await _wait_ready(urls, worker, plan.timeout_s)
            if routine and not await collector.wait_count(1, plan.timeout_s):
                raise TimeoutError("no routine prediction")
            target = f"{prefix}-scans-stat" if lanes else topics.scans
            intended = await load.paced(bootstrap, target, stat, plan.stat_rate, max_bytes)
            await session.wait([*intended, *(m.event_id for m in routine)], plan.timeout_s)
            arrived = {i: a.produced_at for i, a in collector.arrivals.items()}
    finally:
        faust = e2e.faust_topics(f"{prefix}-worker") + e2e.faust_topics(
            f"{prefix}-worker{STAT_APP_SUFFIX}")
        delete_topics(settings, names + faust)
    start, end = min(intended.values()), max(intended.values())
    result = {"phase": name, "backlog": len(routine), "stat": len(stat),
              "stat_rate": plan.stat_rate, "load_avg_1m": [load_before[0], os.getloadavg()[0]],
              "stat_latency_ms": stats.percentiles(stats.latencies_ms(intended, arrived))}
    if routine:
        produced = [arrived[m.event_id] for m in routine]
        result["routine_msg_per_s_during_stat"] = routine_rate(produced, start, end)
        result["routine_drain"] = stats.drain_rate(produced)["msg_per_s"]
    return result


def verdict(results: list[dict]) -> dict:
    """The issue's targets: STAT p99 under backlog <= 2x idle; routine drops <= 20 % vs FIFO."""
    by = {r["phase"]: r for r in results}
    ratio = by["lanes"]["stat_latency_ms"]["p99"] / by["idle"]["stat_latency_ms"]["p99"]
    drop = 1 - by["lanes"]["routine_msg_per_s_during_stat"] / by["fifo"][
        "routine_msg_per_s_during_stat"]
    drain_drop = 1 - by["lanes"]["routine_drain"] / by["fifo"]["routine_drain"]
    return {"stat_p99_ratio": ratio, "stat_target_met": ratio <= 2.0,
            "routine_drop": drop, "routine_drain_drop": drain_drop,
            "routine_target_met": drop <= 0.20}


def markdown(results: list[dict], plan: StatPlan) -> str:
    """The docs/benchmarks.md table."""
    lines = [(f"| phase | routine backlog ({SIZE}) | STAT scans | STAT p50 ms | STAT p99 ms | "
              "STAT max ms | routine msg/s while STAT flows | routine drain msg/s |"),
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lat = r["stat_latency_ms"]
        during, drain = r.get("routine_msg_per_s_during_stat"), r.get("routine_drain")
        lines.append(f"| {r['phase']} | {r['backlog']:,} | {r['stat']} at {plan.stat_rate:g}/s | "
                     f"{lat['p50']:,.0f} | {lat['p99']:,.0f} | {lat['max']:,.0f} | "
                     f"{'-' if during is None else f'{during:.1f}'} | "
                     f"{'-' if drain is None else f'{drain:.1f}'} |")
    return "\n".join(lines)


def run_stat(args: argparse.Namespace) -> int:
    """Handler of `medstream bench --stat`: print the table and the verdict, write the JSON."""
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = Settings()
    settings = settings.model_copy(update={"state_dir": settings.state_dir.resolve()})
    plan = StatPlan(backlog=args.stat_backlog)
    with local_stack(settings) as stack:
        results = [asyncio.run(phase(name, stack, plan)) for name in PHASES]
    summary = {"plan": asdict(plan), "machine": machine.describe(), "phases": results,
               "verdict": verdict(results),
               "worker_env": {k: v for k, v in os.environ.items() if k.startswith("MEDSTREAM_")}}
    print(markdown(results, plan))
    print(json.dumps(summary["verdict"]))
    out = Path(args.out).with_name(args.stat_json)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    """Add `--stat` (and its options) to `medstream bench`; call after its set_defaults."""
    parser.add_argument("--stat", action="store_true",
                        help="STAT lanes: STAT latency under a routine backlog vs idle vs FIFO")
    parser.add_argument("--stat-backlog", type=int, default=StatPlan.backlog,
                        help="routine backlog of the --stat run (default 5000)")
    parser.add_argument("--stat-json", default="benchmarks-stat-lanes.json",
                        help="the --stat run's raw figures, next to --out")
    default: Callable[[argparse.Namespace], int] = parser.get_default("func")
    parser.set_defaults(func=lambda args: run_stat(args) if args.stat else default(args))
