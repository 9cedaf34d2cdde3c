"""A study survives its worker: SIGKILL mid-study, and a rebalance to a second worker.

The state lives in a faust table whose changelog is on the real broker (Tansu): after the kill
the restarted worker restores it, after the rebalance the new owner does, and the study still
ends as exactly one final result with every instance counted once (a re-sent instance and the
re-deliveries of the kill are not counted twice). Table recovery reads each changelog to its
true end, which Tansu's ListOffsets does not report (worker/changelog_ends.py, `log_ends`, installed by worker/streaming_patches.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import aiokafka
import pytest
from pydicom.uid import generate_uid

from tests.integration.studies_kit import Reader, all_topics, instance, radiograph, results, wait
from tests.support.harness import Topics, TopicsWorker, publish
from worker.changelog_ends import log_ends
from worker.settings import Settings

pytestmark = pytest.mark.integration


def persisted(settings: Settings, app_id: str, study: str) -> Callable[[], int]:
    """How many instances the study's latest state in the table's changelog remembers."""
    reader = Reader(settings, f"{app_id}-studies-changelog")

    def count() -> int:
        states = [json.loads(v) for k, v in reader.poll() if k == json.dumps(study).encode()]
        return len(states[-1]["sops"]) if states else 0

    return count


def scans(study: str, n: int, sample: str | None = None) -> list[tuple[bytes, bytes]]:
    """`n` chest radiographs (predicted), or `n` instances of a sample file (MR: skipped)."""
    series = generate_uid()
    return [(study.encode(), (radiograph(study, series, i) if sample is None else
                              instance(study, series, sample=sample))[1]) for i in range(n)]


#: The study cannot complete before its MR series arrives, which comes last: a quiet period
#: between the parts (a restart, a rebalance, a slow test machine) does not close it early.
REQUIRED = {"quiet_s": 2, "required_modalities": '["MR"]'}


def start(settings: Settings, topics: Topics, env: dict[str, str], path: Path,
          app_id: str) -> TopicsWorker:
    return TopicsWorker(settings, topics, path, extra_env=env, app_id=app_id).start()


def test_sigkill_mid_study_restores_the_state_and_counts_once(settings: Settings, topic_factory,
                                                              tmp_path: Path) -> None:
    topics, study_topics = all_topics(topic_factory)
    env, app_id, study = study_topics.env(**REQUIRED), f"it-{generate_uid()[-10:]}", generate_uid()
    first_half, second_half = scans(study, 4), scans(study, 4, "MR_small.dcm")
    worker = start(settings, topics, env, tmp_path / "a", app_id)
    answers = Reader(settings, study_topics.results)
    try:
        worker.wait_ready()
        remembered = persisted(settings, app_id, study)
        publish(settings, topics.scans, first_half)
        wait(worker, "the first half in the changelog", lambda: remembered() == 4)
        worker.kill()
        publish(settings, topics.scans, second_half + first_half[:1])  # and one sent twice
        worker = start(settings, topics, env, tmp_path / "b", app_id)
        (result,) = wait(worker, "the study's result", lambda: results(answers, study), 120)
        restore_s = worker.metric("medstream_state_restore_seconds_sum", {"table": "studies"})
        worker.stop()
        assert len(results(answers, study)) == 1
    finally:
        worker.stop()
        answers.close()
    assert (result.revision, result.status, result.complete) == (1, "final", True)
    assert result.instances == {"total": 8, "predicted": 4, "skipped": 4, "dead_lettered": 0}
    assert restore_s > 0


def test_rebalance_mid_study_moves_the_state_to_the_other_worker(settings: Settings,
                                                                 topic_factory,
                                                                 tmp_path: Path) -> None:
    topics, study_topics = all_topics(topic_factory)
    env, app_id, study = study_topics.env(**REQUIRED), f"it-{generate_uid()[-10:]}", generate_uid()
    parts = [scans(study, 3), scans(study, 3), scans(study, 3, "MR_small.dcm")]
    first = start(settings, topics, env, tmp_path / "a", app_id)
    second = None
    answers = Reader(settings, study_topics.results)
    try:
        first.wait_ready()
        remembered = persisted(settings, app_id, study)
        publish(settings, topics.scans, parts[0])
        wait(first, "the first part in the changelog", lambda: remembered() == 3)
        second = start(settings, topics, env, tmp_path / "b", app_id)  # the group rebalances
        publish(settings, topics.scans, parts[1])
        second.wait_ready()
        wait(second, "the second part in the changelog", lambda: remembered() == 6)
        first.stop()  # every partition, and the study with it, moves to the second worker
        publish(settings, topics.scans, parts[2])
        (result,) = wait(second, "the study's result", lambda: results(answers, study), 120)
        second.stop()
        assert len(results(answers, study)) == 1
    finally:
        first.stop()
        if second is not None:
            second.stop()
        answers.close()
    assert (result.revision, result.status, result.complete) == (1, "final", True)
    assert result.instances == {"total": 9, "predicted": 6, "skipped": 3, "dead_lettered": 0}


async def test_table_recovery_reads_changelogs_to_their_true_end(settings: Settings,
                                                                 topic_factory) -> None:
    topic = topic_factory("changelog", 2)
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=50)
    await producer.start()
    try:  # one record, then five sent together: the last batch holds five records
        await producer.send_and_wait(topic, b"v", key=b"k", partition=0)
        await asyncio.gather(*[await producer.send(topic, b"v", key=b"k", partition=0)
                               for _ in range(5)])
    finally:
        await producer.stop()
    tps = [aiokafka.TopicPartition(topic, p) for p in (0, 1)]
    probe = aiokafka.AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await probe.start()
    try:
        reported = await probe.end_offsets(tps)
    finally:
        await probe.stop()
    ends = await log_ends(aiokafka.AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap),
                          reported)
    assert ends == {tps[0]: 6, tps[1]: 0}  # whatever end_offsets() said (Tansu 0.6: 2, not 6)
