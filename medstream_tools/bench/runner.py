"""One benchmark run: for every workload, ceilings, naive baseline and medstream, side by side."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time
import uuid
from dataclasses import dataclass

from medstream_tools.bench import ceiling, corpus, e2e, load, stats
from medstream_tools.bench.stack import Stack, create_bench_topics, delete_topics
from medstream_tools.bench.workloads import Workload

log = logging.getLogger(__name__)

CLINICAL_SLICES = 300
CLINICAL_WORKLOAD = "scans-ct512"
HOP_RATE = 200.0  # msg/s of the broker-only latency probe
FAUST_FETCH_WAIT_MS = 1500  # what faust-streaming 0.15 hard-codes for its consumer
COLLECTOR_FETCH_WAIT_MS = 20  # what the benchmark's own prediction collector uses
STARTUP_TIMEOUT_S = 90.0  # worker start to first prediction
WARM_UP_MESSAGES = 8


# Messages pre-filled per workload: (fewest, most). The most bounds the in-memory broker's
# footprint (1,500 x 0.5 MB CT; 150 x 7 MB CR).
BACKLOG_LIMITS = {"scans-ct128": (300, 5000), "scans-ct512": (100, 1500),
                  "scans-cr2k": (20, 150), "vitals": (1000, 30000),
                  "scans-densenet121": (30, 400), "scans-xception-chest": (30, 400),
                  "scans-xception-brain": (30, 400)}
SCALE_OUT = 2  # the drain is repeated with `medstream worker --processes 2`
NAIVE_LIMITS = (20, 2000)
NAIVE_OVERHEAD_MS = 3.0  # produce + ack + commit per message, for sizing only


@dataclass(frozen=True)
class Plan:
    """How much of everything to measure (`--quick` or full)."""

    name: str
    workloads: tuple[str, ...]
    drain_s: float  # seconds of medstream's backlog drain that are counted
    naive_s: float  # aimed length of the naive baseline
    probe_s: float  # seconds per ceiling measurement point
    concurrencies: tuple[int, ...]
    paced_s: float  # seconds of each paced open-loop load
    loads: tuple[float, ...] = (0.5, 0.8)  # fractions of the measured maximum


QUICK = Plan(name="quick", workloads=("scans-ct512", "vitals"), drain_s=3.0, naive_s=1.5,
             probe_s=0.25, concurrencies=(4,), paced_s=2.0)
FULL = Plan(name="full", workloads=("scans-ct128", "scans-ct512", "scans-cr2k", "vitals",
                                    "scans-densenet121", "scans-xception-chest",
                                    "scans-xception-brain"),
            drain_s=15.0, naive_s=5.0, probe_s=1.0, concurrencies=(1, 4), paced_s=8.0)


def _clamp(value: float, limits: tuple[int, int]) -> int:
    return int(min(max(value, limits[0]), limits[1]))


def sizes(workload: str, ceilings: dict, plan: Plan, cores: int) -> tuple[int, int]:
    """(backlog, naive count) aimed at the plan's durations, from this run's ceilings.

    The naive loop is expected near one preprocess + one batch-1 request per message, and
    medstream somewhere between that and min(all cores preprocessing, Triton's best): the
    backlog is sized for their geometric mean. A backlog that is served before `drain_s` ends
    still gives a valid rate. Sizing only: nothing is reported from these estimates.
    """
    prep_ms = ceilings["preprocess"]["median_ms"]
    naive_ms = prep_ms + (ceilings["triton"]["batch1_median_ms"] or 0.0) + NAIVE_OVERHEAD_MS
    ceiling = min(cores * 1e3 / prep_ms, ceilings["triton"]["items_per_s"])
    expected = math.sqrt(ceiling * 1e3 / naive_ms)  # between the naive loop and the ceiling
    backlog = _clamp(expected * (plan.drain_s + 2.0), BACKLOG_LIMITS[workload])
    return backlog, min(backlog, _clamp(plan.naive_s * 1e3 / naive_ms, NAIVE_LIMITS))


async def _naive(workload: Workload, topic: str, out_topic: str, count: int) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "medstream_tools.bench.naive", "--workload", workload.name, "--topic", topic,
        "--out-topic", out_topic, "--count", str(count),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=e2e.ROOT,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"naive baseline failed ({proc.returncode}): {err.decode()[-2000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def _ceilings(workload: Workload, stack: Stack, plan: Plan) -> dict:
    sample = workload.sample_value()
    _, tensor = workload.decode(sample)
    reference = workload.reference_decode
    return {
        "message_bytes": len(sample),
        "preprocess": ceiling.preprocess_rate(workload.decode, sample, plan.probe_s),
        "preprocess_pydicom": None if reference is None else ceiling.preprocess_rate(
            reference, sample, plan.probe_s),
        "ort": ceiling.ort_ceiling(workload.model_source(), workload.input_name, tensor,
                                   workload.batch_sizes, plan.probe_s),
        "triton": await ceiling.triton_ceiling(
            stack.settings.triton_grpc_url, workload.model, workload.input_name, tensor,
            workload.batch_sizes, plan.concurrencies, plan.probe_s),
    }


def _session(workload: Workload, stack: Stack, topics: e2e.Topics, app_id: str,
             phase: str, processes: int = 1) -> e2e.Session:
    settings = stack.settings
    worker = e2e.WorkerProcess(settings, topics, app_id,
                               settings.state_dir / f"bench-worker-{workload.name}-{phase}.log",
                               processes=processes,
                               rules=workload.routing_rules(settings.state_dir))
    collector = load.Collector(settings.kafka_bootstrap, topics.predictions, topics.deadletter)
    return e2e.Session(settings, worker, collector, stack.triton_pid)


def _input_topic(workload: Workload, topics: e2e.Topics) -> str:
    return topics.scans if workload.kind == "scan" else topics.vitals


async def _latency(session: e2e.Session, workload: Workload, plan: Plan, topic: str,
                   prefix: str, max_rate: float) -> dict:
    """Paced loads at the plan's fractions of `max_rate`, then the CT series (ct512 only)."""
    out: dict = {"paced": []}
    for fraction in plan.loads:
        rate = max_rate * fraction
        count = max(20, int(rate * plan.paced_s))
        messages = workload.messages(count, f"{prefix}-p{int(fraction * 100)}")
        out["paced"].append({"load": fraction, **await e2e.paced(
            session, topic, messages, rate, workload.model, 60.0 + plan.paced_s * 3)})
    if workload.name == CLINICAL_WORKLOAD:
        series = corpus.scan_messages(workload.size_class, CLINICAL_SLICES, one_study=True)
        out["ct_series"] = await e2e.ct_series(session, topic, series, 180.0)
    return out


async def _medstream(workload: Workload, stack: Stack, plan: Plan, prefix: str,
                     backlog: list[corpus.Message]) -> dict:
    """Drain the pre-filled backlog, then the latency phases: on the same worker when it
    served the whole backlog, else on a second worker with fresh topics (no backlog left)."""
    drain_topics = e2e.Topics.fresh(prefix)
    async with _session(workload, stack, drain_topics, prefix, "drain") as session:
        result = await e2e.drain(session, backlog, workload.model, plan.drain_s, STARTUP_TIMEOUT_S)
        drained = result["served"] == len(backlog)
        if drained:
            result |= await _latency(session, workload, plan, _input_topic(workload, drain_topics),
                                     prefix, result["msg_per_s"])
        peak = e2e.peak_rss_bytes(session.worker)
    if not drained:
        live, live_id = e2e.Topics.fresh(f"{prefix}-live"), f"{prefix}-live"
        create_bench_topics(stack.settings, live.names(), stack.settings.topic_partitions)
        try:
            async with _session(workload, stack, live, live_id, "live") as session:
                await _warm_up(session, workload, _input_topic(workload, live), prefix)
                result |= await _latency(session, workload, plan, _input_topic(workload, live),
                                         prefix, result["msg_per_s"])
                peak = max(peak, e2e.peak_rss_bytes(session.worker))
        finally:
            delete_topics(stack.settings, live.names() + e2e.faust_topics(live_id))
    result["peak_rss_bytes"] = peak
    result["latency_worker"] = "drain worker" if drained else "fresh worker"
    return result


async def _scale_out(workload: Workload, stack: Stack, plan: Plan, prefix: str,
                     count: int) -> dict:
    """The drain again on fresh topics, with `medstream worker --processes SCALE_OUT`."""
    settings = stack.settings
    topics, app_id = e2e.Topics.fresh(f"{prefix}-x{SCALE_OUT}"), f"{prefix}-x{SCALE_OUT}"
    create_bench_topics(settings, topics.names(), settings.topic_partitions)
    try:
        backlog = workload.messages(count, app_id)
        await load.prefill(settings.kafka_bootstrap, _input_topic(workload, topics), backlog,
                           settings.max_message_bytes)
        async with _session(workload, stack, topics, app_id, f"x{SCALE_OUT}",
                            SCALE_OUT) as session:
            result = await e2e.drain(session, backlog, workload.model, plan.drain_s,
                                     STARTUP_TIMEOUT_S)
    finally:
        delete_topics(settings, topics.names() + e2e.faust_topics(app_id))
    return {"processes": SCALE_OUT, **result}


async def _warm_up(session: e2e.Session, workload: Workload, topic: str, prefix: str) -> None:
    """A few messages through the fresh worker, so start-up is not counted as latency."""
    messages = workload.messages(WARM_UP_MESSAGES, f"{prefix}-warm")
    await load.prefill(session.settings.kafka_bootstrap, topic, messages,
                       session.settings.max_message_bytes)
    await session.wait([m.event_id for m in messages], STARTUP_TIMEOUT_S)


async def run_workload(workload: Workload, stack: Stack, plan: Plan, run_id: str,
                       cores: int) -> dict:
    """Ceilings, naive baseline and medstream for one workload, over the same messages."""
    settings = stack.settings
    if workload.loaded_at_bench_time:
        from medstream_tools.bench import densenet  # torch: only when this workload runs

        log.info("%s: exporting and loading %s into Triton", workload.name, workload.model)
        densenet.load(settings.triton_http_url, workload.model)
    try:
        return await _run_workload(workload, stack, plan, run_id, cores)
    finally:
        if workload.loaded_at_bench_time:
            densenet.unload(settings.triton_http_url, workload.model)


async def _run_workload(workload: Workload, stack: Stack, plan: Plan, run_id: str,
                        cores: int) -> dict:
    settings = stack.settings
    log.info("%s: ceilings", workload.name)
    result = {"workload": workload.name, "kind": workload.kind, "model": workload.model,
              **await _ceilings(workload, stack, plan)}
    prefix = f"bench-{run_id}-{workload.name}"
    topics = e2e.Topics.fresh(prefix)
    naive_out = f"{prefix}-naive"
    create_bench_topics(settings, topics.names() + [naive_out], settings.topic_partitions)
    try:
        in_topic = _input_topic(workload, topics)
        n_backlog, n_naive = sizes(workload.name, result, plan, cores)
        backlog = workload.messages(n_backlog, prefix)
        await load.prefill(settings.kafka_bootstrap, in_topic, backlog, settings.max_message_bytes)
        log.info("%s: naive baseline over %d messages", workload.name, n_naive)
        result["naive"] = await _naive(workload, in_topic, naive_out, n_naive)
        log.info("%s: medstream over %d messages", workload.name, len(backlog))
        result["medstream"] = await _medstream(workload, stack, plan, prefix, backlog)
    finally:
        delete_topics(settings, topics.names() + [naive_out] + e2e.faust_topics(prefix))
    log.info("%s: medstream with %d processes", workload.name, SCALE_OUT)
    result["scale_out"] = await _scale_out(
        workload, stack, plan, prefix, min(n_backlog * SCALE_OUT, BACKLOG_LIMITS[workload.name][1]))
    return result


async def broker_hop(stack: Stack, plan: Plan, run_id: str) -> dict:
    """Produce -> consume latency of the broker alone, with faust's fetch wait and with ours."""
    settings = stack.settings
    topic = f"bench-{run_id}-hop"
    create_bench_topics(settings, [topic], settings.topic_partitions)
    try:
        count = int(HOP_RATE * plan.paced_s)
        by_wait = await load.hop_latency(settings.kafka_bootstrap, topic, HOP_RATE, count,
                                         (FAUST_FETCH_WAIT_MS, COLLECTOR_FETCH_WAIT_MS))
    finally:
        delete_topics(settings, [topic])
    return {"rate_msg_per_s": HOP_RATE,
            "by_fetch_wait_ms": {str(w): stats.percentiles(v) for w, v in by_wait.items()}}


async def run(workloads: list[Workload], stack: Stack, plan: Plan, cores: int) -> dict:
    """The whole benchmark on a machine with `cores` usable cores; returns the JSON-able result."""
    run_id = uuid.uuid4().hex[:8]
    started = time.time()
    hop = await broker_hop(stack, plan, run_id)
    results = [await run_workload(w, stack, plan, run_id, cores) for w in workloads]
    return {"plan": plan.name, "run_id": run_id, "started": started,
            "duration_s": time.time() - started, "broker_hop": hop, "workloads": results}
