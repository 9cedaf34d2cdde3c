"""One benchmark run: for every workload, ceilings, naive baseline and medstream, side by side."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import uuid
from dataclasses import dataclass

from bench import ceiling, corpus, e2e, load, stats
from bench.stack import Stack, create_bench_topics, delete_topics
from bench.workloads import Workload
from triton_models import REPOSITORY

log = logging.getLogger(__name__)

CLINICAL_SLICES = 300
CLINICAL_WORKLOAD = "scans-ct512"
HOP_RATE = 200.0  # msg/s of the broker-only latency probe
FAUST_FETCH_WAIT_MS = 1500  # what faust-streaming 0.15 hard-codes for its consumer
COLLECTOR_FETCH_WAIT_MS = 20  # what the benchmark's own prediction collector uses


@dataclass(frozen=True)
class Plan:
    """How much of everything to measure (`--quick` or full)."""

    name: str
    workloads: tuple[str, ...]
    backlog: dict[str, int]  # messages pre-filled per workload (medstream drain)
    naive: dict[str, int]  # messages the naive baseline serves per workload
    probe_s: float  # seconds per ceiling measurement point
    concurrencies: tuple[int, ...]
    paced_s: float  # seconds of each paced open-loop load
    loads: tuple[float, ...] = (0.5, 0.8)  # fractions of the measured maximum


QUICK = Plan(
    name="quick", workloads=("scans-ct512", "vitals"),
    backlog={"scans-ct512": 200, "vitals": 2000}, naive={"scans-ct512": 30, "vitals": 200},
    probe_s=0.3, concurrencies=(4,), paced_s=2.5,
)
FULL = Plan(
    name="full", workloads=("scans-ct128", "scans-ct512", "scans-cr2k", "vitals"),
    backlog={"scans-ct128": 2000, "scans-ct512": 1200, "scans-cr2k": 120, "vitals": 15000},
    naive={"scans-ct128": 300, "scans-ct512": 200, "scans-cr2k": 30, "vitals": 1000},
    probe_s=1.5, concurrencies=(1, 4), paced_s=8.0,
)


async def _naive(workload: Workload, topic: str, out_topic: str, count: int) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.naive", "--workload", workload.name, "--topic", topic,
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
    model_file = REPOSITORY / workload.model / "1" / "model.onnx"
    return {
        "message_bytes": len(sample),
        "preprocess": ceiling.preprocess_rate(workload.decode, sample, plan.probe_s),
        "ort": ceiling.ort_ceiling(model_file, workload.input_name, tensor, workload.batch_sizes,
                                   plan.probe_s),
        "triton": await ceiling.triton_ceiling(
            stack.settings.triton_grpc_url, workload.model, workload.input_name, tensor,
            workload.batch_sizes, plan.concurrencies, plan.probe_s),
    }


async def _medstream(workload: Workload, stack: Stack, plan: Plan, topics: e2e.Topics,
                     backlog: list[corpus.Message], app_id: str) -> dict:
    settings = stack.settings
    in_topic = topics.scans if workload.kind == "scan" else topics.vitals
    worker = e2e.WorkerProcess(settings, topics, app_id,
                               settings.state_dir / f"bench-worker-{workload.name}.log")
    collector = load.Collector(settings.kafka_bootstrap, topics.predictions, topics.deadletter)
    drain_timeout = 60.0 + len(backlog) / 10.0 if workload.kind == "scan" else 120.0
    async with e2e.Session(settings, worker, collector, stack.triton_pid) as session:
        result = await e2e.drain(session, backlog, workload.model, drain_timeout)
        paced = []
        for fraction in plan.loads:
            rate = result["msg_per_s"] * fraction
            count = max(20, int(rate * plan.paced_s))
            messages = workload.messages(count, f"{app_id}-p{int(fraction * 100)}")
            paced.append({"load": fraction, **await e2e.paced(
                session, in_topic, messages, rate, workload.model, 60.0 + plan.paced_s * 3)})
        result["paced"] = paced
        if workload.name == CLINICAL_WORKLOAD:
            series = corpus.scan_messages(workload.size_class, CLINICAL_SLICES,
                                          study_uid=f"2.25.{uuid.uuid4().int}")
            result["ct_series"] = await e2e.ct_series(session, in_topic, series, 180.0)
        result["peak_rss_bytes"] = e2e.peak_rss_bytes(worker)
    return result


async def run_workload(workload: Workload, stack: Stack, plan: Plan, run_id: str) -> dict:
    """Ceilings, naive baseline and medstream for one workload, over the same messages."""
    settings = stack.settings
    log.info("%s: ceilings", workload.name)
    result = {"workload": workload.name, "kind": workload.kind, "model": workload.model,
              **await _ceilings(workload, stack, plan)}
    prefix = f"bench-{run_id}-{workload.name}"
    topics = e2e.Topics.fresh(prefix)
    naive_out = f"{prefix}-naive"
    create_bench_topics(settings, topics.names() + [naive_out], settings.topic_partitions)
    try:
        in_topic = topics.scans if workload.kind == "scan" else topics.vitals
        backlog = workload.messages(plan.backlog[workload.name], prefix)
        await load.prefill(settings.kafka_bootstrap, in_topic, backlog, settings.max_message_bytes)
        log.info("%s: naive baseline over %d messages", workload.name, plan.naive[workload.name])
        result["naive"] = await _naive(workload, in_topic, naive_out, plan.naive[workload.name])
        log.info("%s: medstream over %d messages", workload.name, len(backlog))
        result["medstream"] = await _medstream(workload, stack, plan, topics, backlog, prefix)
    finally:
        delete_topics(settings, topics.names() + [naive_out])
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


async def run(workloads: list[Workload], stack: Stack, plan: Plan) -> dict:
    """The whole benchmark; returns the JSON-able result."""
    run_id = uuid.uuid4().hex[:8]
    started = time.time()
    hop = await broker_hop(stack, plan, run_id)
    results = [await run_workload(w, stack, plan, run_id) for w in workloads]
    return {"plan": plan.name, "run_id": run_id, "started": started,
            "duration_s": time.time() - started, "broker_hop": hop, "workloads": results}
