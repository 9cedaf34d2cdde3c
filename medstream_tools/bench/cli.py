"""`medstream bench [--quick] [--kind scans|vitals|all] [--out docs/benchmarks.md]`,
`medstream bench --stat` (STAT lanes, medstream_tools/bench/stat_lanes.py) and
`medstream bench --study` (study completion latency, medstream_tools/bench/study.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from operator import attrgetter
from pathlib import Path

from medstream_tools.bench import machine, report, runner, stat_lanes, study
from medstream_tools.bench.stack import local_stack
from medstream_tools.bench.workloads import workloads
from worker.settings import Settings

_SETTINGS_SHOWN = ("scan.max_batch", "scan.within_s", "vitals.max_batch", "vitals.within_s",
                   "scan.concurrency", "vitals.concurrency", "consumer_fetch_wait_ms",
                   "triton_max_inflight", "decode_threads", "topic_partitions")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `bench` sub-command."""
    parser = subparsers.add_parser(
        "bench", help="measure medstream against the model ceiling and a naive baseline")
    parser.add_argument("--quick", action="store_true",
                        help="a short run (one scan size and vitals, < 90 s)")
    parser.add_argument("--kind", default="all",
                        help="scans, vitals, all, or one workload by name (e.g. "
                             "scans-densenet121, whatever the plan)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"),
                        help="Markdown report (its .json sibling gets the raw figures)")
    parser.add_argument("--study", action="store_true",
                        help="only the study completion latency (medstream_tools/bench/study.py)")
    parser.add_argument("--study-instances", type=int, default=300, help="instances of the study")
    parser.add_argument("--study-runs", type=int, default=3, help="runs (the median is reported)")
    parser.add_argument("--study-quiet-s", type=float, default=2.0, help="the study quiet timer")
    parser.set_defaults(func=run)
    stat_lanes.register(parser)  # --stat: STAT lanes (docs/lanes.md)


def selected(plan: runner.Plan, kind: str, names: list[str]) -> list[str]:
    """The plan's workloads of the chosen kind, or the one workload named (of `names`)."""
    if kind in names:
        return [kind]
    if kind == "all":
        return list(plan.workloads)
    chosen = [w for w in plan.workloads if w.startswith(kind)]
    if not chosen:
        raise SystemExit(f"--kind {kind!r}: neither scans, vitals, all nor one of {names}")
    return chosen


def run(args: argparse.Namespace) -> int:
    """Handler: run the benchmark on the local stack, print the tables, write the reports."""
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = Settings()
    settings = settings.model_copy(update={"state_dir": settings.state_dir.resolve()})
    if args.study:
        return study.main(args, settings)
    plan = runner.QUICK if args.quick else runner.FULL
    catalogue = workloads(settings.scan.model, settings.vitals.model)
    chosen = [catalogue[name] for name in selected(plan, args.kind, list(catalogue))]
    description = machine.describe()
    with local_stack(settings) as stack:
        result = asyncio.run(runner.run(chosen, stack, plan, description["cores"]))
    result["machine"] = description
    result["settings"] = {name: attrgetter(name)(settings) for name in _SETTINGS_SHOWN}
    print(report.render(result, markdown=False))
    report.write_markdown(args.out, result)
    report.write_json(args.out.with_suffix(".json"), result)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0
