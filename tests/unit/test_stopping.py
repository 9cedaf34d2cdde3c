"""The bounded stop (worker/stopping.py) and the consumer thread that reports its stop although
a fetch request was still retrying (worker/streaming_patches.py, patch 5)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from worker.app import _faust_app
from worker.settings import Settings
from worker.stopping import STOP_DEADLINE_EXIT_CODE, BoundedStopWorker, StopDeadline
from worker.streaming_patches import FetchWaitConsumerThread


class ClosingWithARetryingFetch:
    """aiokafka's consumer stop as Fetcher.close runs it with the broker gone: a pending fetch
    request task, asleep in its retry backoff, is cancelled and awaited without a catch."""

    async def stop(self) -> None:
        fetch = asyncio.ensure_future(asyncio.sleep(60))
        await asyncio.sleep(0)
        fetch.cancel()
        await fetch


@pytest.fixture
async def consumer_thread(tmp_path) -> FetchWaitConsumerThread:
    thread = _faust_app(Settings(state_dir=tmp_path)).consumer._new_consumer_thread()
    thread._consumer = ClosingWithARetryingFetch()
    return thread


async def test_faust_thread_stop_raises_the_fetch_cancellation(consumer_thread) -> None:
    # what mode's ServiceThread._start_thread does not count as an end (not an Exception)
    with pytest.raises(asyncio.CancelledError):
        await AIOKafkaConsumerThread.on_thread_stop(consumer_thread)


async def test_patched_thread_stop_ends_despite_the_fetch_cancellation(consumer_thread) -> None:
    await consumer_thread.on_thread_stop()  # returns: the shutdown is reported at once


async def test_patched_thread_stop_still_propagates_its_own_cancellation(tmp_path) -> None:
    thread = _faust_app(Settings(state_dir=tmp_path)).consumer._new_consumer_thread()
    started = asyncio.Event()

    class Hanging:
        async def stop(self) -> None:
            started.set()
            await asyncio.sleep(60)

    thread._consumer = Hanging()
    task = asyncio.ensure_future(thread.on_thread_stop())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_deadline_ends_the_process_with_its_code_and_a_log_line() -> None:
    exited: list[int] = []
    done = threading.Event()
    deadline = StopDeadline(0.05, exit_now=lambda code: (exited.append(code), done.set()))
    deadline.arm()
    deadline.arm()  # the first countdown holds
    assert done.wait(10)
    assert exited == [STOP_DEADLINE_EXIT_CODE] == [143]


def test_deadline_ends_a_stuck_process() -> None:
    code = ("from worker.stopping import StopDeadline\nimport time\n"
            "StopDeadline(0.2).arm()\ntime.sleep(60)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          timeout=30)
    assert proc.returncode == STOP_DEADLINE_EXIT_CODE
    assert "still stopping 0.2 s after its stop began" in proc.stderr


async def test_worker_arms_the_deadline_when_its_stop_begins(tmp_path) -> None:
    armed: list[bool] = []

    class Recorded(StopDeadline):
        def arm(self) -> None:
            armed.append(True)

    app = _faust_app(Settings(state_dir=tmp_path))
    worker = BoundedStopWorker(app, loop=asyncio.get_running_loop(),
                               stop_deadline=Recorded(5.0))
    assert not armed
    await worker.on_stop()
    assert armed == [True] and worker.stop_deadline.deadline_s == 5.0
