"""`medstream demo`: bring the local stack up and show a Kafka round trip and the models.

Publishes real DICOM files from pydicom's test data (a CT, two MRs, a chest radiograph) and one
vitals window (heart rate from the MIT-BIH record 208 ECG excerpt in scipy) to the
scans/vitals topics, reads them back from Kafka, routes each scan with the routing rules
(`worker.routing`: the CT and the MR without a body part are skipped), preprocesses the routed
ones as their model declares and runs them and `vitals_lstm` on the local Triton over gRPC.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pydicom
import tritonclient.grpc as grpcclient
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pydicom.data import get_testdata_file

from medstream_tools.demo.pipeline import run_pipeline_demo
from medstream_tools.demo.samples import DEMO_PATIENT, SAMPLE_SCANS, demo_vitals, heart_rate_window
from medstream_tools.localstack.process import StackError
from medstream_tools.localstack.stack import StackConfig, up
from worker.contracts import CHANNELS, decode_vitals
from worker.preprocess.formats import input_format
from worker.preprocess.vitals import window_to_tensor
from worker.routing import Router, SkipAs, load_rules
from worker.routing.attributes import dataset_lookup
from worker.settings import Settings


def _round_trip(settings: Settings, topic: str, key: bytes, value: bytes) -> bytes:
    """Produce one record and read exactly that record back; returns its value."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap,
                             max_request_size=settings.max_message_bytes)
    meta = producer.send(topic, key=key, value=value).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                             enable_auto_commit=False, consumer_timeout_ms=30_000)
    partition = TopicPartition(topic, meta.partition)
    consumer.assign([partition])
    consumer.seek(partition, meta.offset)
    try:
        record = next(iter(consumer))
    finally:
        consumer.close()
    print(f"  kafka: {topic}[{meta.partition}]@{meta.offset} {len(record.value):,} bytes back")
    return record.value


def _infer(client: grpcclient.InferenceServerClient, model: str, name: str,
           batch: np.ndarray, outputs: list[str]) -> dict[str, np.ndarray]:
    tensor = grpcclient.InferInput(name, list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch)
    result = client.infer(model, [tensor], client_timeout=30)
    return {out: result.as_numpy(out) for out in outputs}


def run_demo(settings: Settings) -> None:
    """Publish, read back, route, preprocess and infer; prints one line per result."""
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    router = Router(load_rules(settings.routing.rules))
    print(f"scans -> routed by {settings.routing.rules}:")
    for name in SAMPLE_SCANS:
        raw = Path(get_testdata_file(name)).read_bytes()
        study = str(pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True).StudyInstanceUID)
        ds = pydicom.dcmread(io.BytesIO(_round_trip(settings, settings.scan.topic,
                                                    study.encode(), raw)))
        decision = router.decide(dataset_lookup(ds))
        if isinstance(decision, SkipAs):
            rule = f" (rule {decision.rule.name!r})" if decision.rule else ""
            print(f"  {name} skipped: {decision.reason.value}{rule}")
            continue
        config = client.get_model_config(decision.model, as_json=True)["config"]
        params = {k: v["string_value"] for k, v in config["parameters"].items()}
        tensor = input_format(params["input_format"]).prepare(ds)
        probs = _infer(client, decision.model, "image", tensor[None],
                       ["probabilities"])["probabilities"][0]
        scores = ", ".join(f"{label}={p:.3f}" for label, p in zip(params["labels"].split(","), probs))
        print(f"  {name} -> {decision.model} ({params.get('version', '?')}): {scores}")

    print(f"vitals -> {settings.vitals.model}:")
    values = heart_rate_window()
    start = datetime.now(UTC) - timedelta(seconds=len(values))
    event = demo_vitals(str(uuid.uuid4()), start, values)
    back = decode_vitals(_round_trip(settings, settings.vitals.topic, DEMO_PATIENT.encode(), event))
    out = _infer(client, settings.vitals.model, "window",
                 window_to_tensor(back.values)[None], ["risk", "forecast"])
    forecast = ", ".join(f"{c}={v:.1f}" for c, v in zip(CHANNELS, out["forecast"][0]))
    hr = [v[0] for v in back.values if v[0] is not None]
    print(f"  MIT-BIH 208, mean HR {np.mean(hr):.0f} bpm over {len(hr)} s: "
          f"risk={out['risk'][0][0]:.3f}; next step: {forecast}")
    client.close()


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `medstream demo`."""
    parser = subparsers.add_parser("demo", help="start the local stack and run sample data")
    parser.add_argument("--quick", action="store_true",
                        help="only the Kafka round trip and direct Triton inference, no worker")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = Settings()
    try:
        for line in up(StackConfig.from_settings(settings), settings):
            print(line)
        if args.quick:
            run_demo(settings)
            return 0
        return run_pipeline_demo(settings)  # the full path, through the worker
    except StackError as exc:
        print(f"medstream demo: {exc}", file=sys.stderr)
        return 1
