"""`medstream demo`: bring the local stack up and show a Kafka round trip and both models.

Publishes two real DICOM files from pydicom's test data (CT_small, MR_small) and one vitals
window (heart rate from the MIT-BIH record 208 ECG excerpt in scipy) to the scans/vitals
topics, reads them back from Kafka, preprocesses them with `worker.preprocess` and runs
`scan_cnn` and `vitals_lstm` on the local Triton server over gRPC.
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
from worker.preprocess.scan import dicom_to_tensor
from worker.preprocess.vitals import window_to_tensor
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
    """Publish, read back, preprocess and infer; prints one line per result."""
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    scan_cfg = client.get_model_config(settings.scan.model, as_json=True)["config"]
    labels = scan_cfg["parameters"]["labels"]["string_value"].split(",")
    version = scan_cfg["parameters"].get("version", {}).get("string_value", "?")

    print(f"scans -> {settings.scan.model} ({version}):")
    tensors, uids = [], []
    for name in SAMPLE_SCANS:
        raw = Path(get_testdata_file(name)).read_bytes()
        study = str(pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True).StudyInstanceUID)
        back = _round_trip(settings, settings.scan.topic, study.encode(), raw)
        ds = pydicom.dcmread(io.BytesIO(back))
        tensors.append(dicom_to_tensor(ds))
        uids.append(str(ds.SOPInstanceUID))
    probs = _infer(client, settings.scan.model, "image", np.stack(tensors),
                   ["probabilities"])["probabilities"]
    for name, uid, row in zip(SAMPLE_SCANS, uids, probs):
        scores = ", ".join(f"{label}={p:.3f}" for label, p in zip(labels, row))
        print(f"  {name} sop_uid={uid}: {scores}")

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
