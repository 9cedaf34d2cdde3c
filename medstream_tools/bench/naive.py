"""The naive baseline: one message at a time, Triton at batch 1, commit after each result.

This is the pattern a first streaming integration usually has (kafka-python consumer,
synchronous client): poll one record, decode + preprocess it, infer it alone, publish one
prediction, wait for the ack, commit its offset. Run as a subprocess by the benchmark:

    python -m medstream_tools.bench.naive --workload scans-ct512 --topic T --out-topic O --count N

It prints one JSON line: messages, seconds, msg/s and its own CPU time / peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import UTC, datetime

import tritonclient.grpc as grpcclient
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from medstream_tools.bench.workloads import Workload, workloads
from worker.contracts import Prediction, encode_prediction
from worker.settings import Settings


def serve_one(workload: Workload, client: grpcclient.InferenceServerClient, value: bytes,
              timestamp_ms: int) -> tuple[str, bytes]:
    """Decode, preprocess and infer one message at batch 1; returns (key, prediction JSON)."""
    event_id, tensor = workload.decode(value)
    tensor = tensor[None]
    inp = grpcclient.InferInput(workload.input_name, list(tensor.shape), "FP32")
    inp.set_data_from_numpy(tensor)
    result = client.infer(workload.model, [inp], client_timeout=30.0)
    outputs = {out.name: result.as_numpy(out.name)[0].tolist()
               for out in result.get_response().outputs}
    now = datetime.now(UTC)
    event_time = datetime.fromtimestamp(timestamp_ms / 1000.0, UTC)
    pred = Prediction(
        event_id=event_id, kind=workload.kind, patient_id=None, model=workload.model,
        model_version="", outputs=outputs, event_time=event_time, produced_at=now,
        latency_ms=(now - event_time).total_seconds() * 1e3,
    )
    return event_id, encode_prediction(pred)


def run(workload: Workload, settings: Settings, topic: str, out_topic: str, count: int) -> dict:
    """Serve `count` messages from the start of `topic`; time all but the first."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=f"naive-{topic}",
        enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=1,
        fetch_max_bytes=settings.max_message_bytes + 1024 * 1024,
        max_partition_fetch_bytes=settings.max_message_bytes + 1024 * 1024,
    )
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(parts)  # no group join: the baseline starts reading at once
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                             max_request_size=settings.max_message_bytes + 64 * 1024)
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    served, t0, cpu0 = 0, 0.0, 0.0
    try:
        while served < count:
            for tp, records in consumer.poll(timeout_ms=1000, max_records=1).items():
                for rec in records:
                    key, body = serve_one(workload, client, rec.value, rec.timestamp)
                    producer.send(out_topic, body, key=key.encode()).get(timeout=30)
                    consumer.commit({tp: OffsetAndMetadata(rec.offset + 1, "", -1)})
                    served += 1
                    if served == 1:
                        t0, cpu0 = time.perf_counter(), time.process_time()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        client.close()
        producer.close()
        consumer.close()
    timed = served - 1
    return {
        "messages": timed,
        "seconds": elapsed,
        "msg_per_s": timed / elapsed if elapsed > 0 else 0.0,
        "cpu_s_per_1k": cpu * 1000.0 / timed if timed else 0.0,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line of the baseline subprocess."""
    parser = argparse.ArgumentParser(prog="python -m medstream_tools.bench.naive", description=__doc__)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out-topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    settings = Settings()
    workload = workloads(settings.scan.model, settings.vitals.model)[args.workload]
    print(json.dumps(run(workload, settings, args.topic, args.out_topic, args.count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
