"""A flame graph of the real worker draining one workload (py-spy), with its CPU per message.

    python -m medstream_tools.bench.profile --workload scans-ct512 --svg docs/flamegraphs/x.svg

Fresh topics, a pre-filled backlog, `medstream worker` as a subprocess (as `medstream bench`
runs it), then `py-spy record --nonblocking` on the worker's pid for `--seconds` while it
drains. Prints one JSON line: drain rate, worker CPU per message and the heaviest frames
(inclusive share of samples, read back from the SVG). py-spy needs ptrace (root here).
Extra `--env NAME=VALUE` pairs reach the worker (A/B of a setting).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import sys
import uuid
from collections import defaultdict
from html import unescape
from pathlib import Path

from medstream_tools.bench import e2e, load
from medstream_tools.bench.stack import create_bench_topics, delete_topics
from medstream_tools.bench.workloads import workloads
from worker.settings import Settings

_TITLE = re.compile(r"<title>(.*?) \(([\d,]+) samples?, [\d.]+%\)</title>")
_FRAME = re.compile(r'<title>(.*?) \([\d,]+ samples?, [\d.]+%\)</title><rect [^>]*?y="(\d+)"'
                    r'[^>]*?fg:x="(\d+)" fg:w="(\d+)"')
_WHERE = re.compile(r"\((.*?):\d+\)$")
STARTUP_TIMEOUT_S = 90.0


def frame_shares(svg: str, top: int = 25) -> list[tuple[str, float]]:
    """(frame, inclusive share of all samples) for the `top` heaviest frames of a py-spy SVG.

    A frame that appears under several callers is summed (recursion would count twice).
    """
    counts: dict[str, int] = defaultdict(int)
    total = 0
    for match in _TITLE.finditer(svg):
        name, samples = unescape(match.group(1)), int(match.group(2).replace(",", ""))
        if name == "all":
            total = samples
            continue
        counts[name] += samples
    if not total:
        return []
    ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
    return [(name, samples / total) for name, samples in ranked]


def package_of(frame: str) -> str:
    """The package a py-spy frame's file belongs to: `aiokafka`, `json`, `worker/contracts`..."""
    where = _WHERE.search(frame)
    if where is None:
        return "other"
    parts = where.group(1).split("/")
    if parts[0] == "worker" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0].removesuffix(".py")


def self_shares(svg: str) -> dict[str, float]:
    """Share of all samples spent in each package's own code (self time, not callees)."""
    frames = [(unescape(n), int(y), int(x), int(w)) for n, y, x, w in _FRAME.findall(svg)]
    root = next((f for f in frames if f[0] == "all"), None)
    if root is None or root[3] == 0:
        return {}
    by_depth: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for _, y, x, w in frames:
        by_depth[y].append((x, w))
    ys = sorted(by_depth)
    step = min(b - a for a, b in itertools.pairwise(ys)) if len(ys) > 1 else 16
    step = step if root[1] == ys[0] else -step  # callees drawn below or above their callers
    out: dict[str, float] = defaultdict(float)
    for name, y, x, w in frames:
        if name == "all":
            continue
        children = sum(cw for cx, cw in by_depth.get(y + step, ()) if x <= cx < x + w)
        out[package_of(name)] += (w - children) / root[3]
    return dict(sorted(out.items(), key=lambda item: -item[1]))


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy not found: install the dev extra")
    return found


async def profile(workload_name: str, count: int, seconds: float, svg: Path,
                  env: dict[str, str]) -> dict:
    """Drain `count` messages of the workload while py-spy records `seconds` of the worker."""
    settings = Settings()
    settings = settings.model_copy(update={"state_dir": settings.state_dir.resolve()})
    workload = workloads(settings.scan.model, settings.vitals.model)[workload_name]
    prefix = f"prof-{uuid.uuid4().hex[:8]}-{workload.name}"
    topics = e2e.Topics.fresh(prefix)
    create_bench_topics(settings, topics.names(), settings.topic_partitions)
    os.environ.update(env)  # the worker subprocess inherits the environment
    try:
        messages = workload.messages(count, prefix)
        topic = topics.scans if workload.kind == "scan" else topics.vitals
        await load.prefill(settings.kafka_bootstrap, topic, messages, settings.max_message_bytes)
        worker = e2e.WorkerProcess(settings, topics, prefix,
                                   settings.state_dir / f"profile-{workload.name}.log")
        collector = load.Collector(settings.kafka_bootstrap, topics.predictions, topics.deadletter)
        async with e2e.Session(settings, worker, collector, None) as session:
            if not await collector.wait_count(1, STARTUP_TIMEOUT_S):
                worker.check_alive()
                raise TimeoutError("no prediction from the worker")
            svg.parent.mkdir(parents=True, exist_ok=True)
            spy = await asyncio.create_subprocess_exec(
                _py_spy(), "record", "--nonblocking", "-r", "100", "-d", str(int(seconds)),
                "-o", str(svg), "--pid", str(worker.proc.pid),  # type: ignore[union-attr]
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            result = await e2e.drain(session, messages, workload.model, seconds, STARTUP_TIMEOUT_S)
            _, err = await spy.communicate()
            if spy.returncode != 0:
                raise RuntimeError(f"py-spy failed: {err.decode()[-500:]}")
    finally:
        delete_topics(settings, topics.names() + e2e.faust_topics(prefix))
    keep = ("msg_per_s", "messages", "worker_cpu_s_per_1k", "mean_batch", "served", "backlog")
    return {"workload": workload.name, "env": env, **{k: result.get(k) for k in keep},
            "self_by_package": self_shares(svg.read_text()),
            "frames": frame_shares(svg.read_text())}


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", required=True)
    parser.add_argument("--count", type=int, default=1000, help="messages pre-filled")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--svg", type=Path, required=True)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    print(json.dumps(asyncio.run(profile(args.workload, args.count, args.seconds, args.svg, env))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
