"""Per-scenario pass counts and durations over repeated chaos runs (`make chaos REPEAT=N`).

Reads `run-1.xml` ... `run-N.xml` (pytest's junit XML, one per run) from a folder and prints
one line per run (start, duration, passed/total), one line per test (runs passed, median and
slowest duration) and the first line of every failure; a run without its XML counts as failed
for every test. Exits 1 unless every test passed in every run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    """One junit XML file: when it started, how long it took, each test's outcome."""

    started: str = "-"
    seconds: float = 0.0
    passed: dict[str, bool] = field(default_factory=dict)  # `module::test` -> passed
    seconds_by_test: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # `module::test` -> first line


def read_run(path: Path) -> Run:
    """The run recorded in `path` (an empty Run when the file is missing or unreadable)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return Run()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    run = Run(started=suites[0].get("timestamp", "-")[:19] if suites else "-",
              seconds=sum(float(s.get("time", 0)) for s in suites))
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name', '')}"
        bad = [c for c in case if c.tag in ("failure", "error", "skipped")]
        run.passed[name] = not bad
        run.seconds_by_test[name] = float(case.get("time", 0))
        if bad:
            text = bad[0].get("message") or bad[0].text or bad[0].tag
            run.failures[name] = text.strip().splitlines()[0][:160] if text.strip() else bad[0].tag
    return run


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


def report(runs: list[Run]) -> tuple[list[str], bool]:
    """(the report's lines, every test passed in every run)."""
    names = sorted({name for run in runs for name in run.passed})
    width = max((len(n) for n in names), default=10)
    lines = ["run  started              duration   passed"]
    for i, run in enumerate(runs, 1):
        outcome = f"{sum(run.passed.values())}/{len(run.passed)}" if run.passed else "no results"
        lines.append(f"{i:<4} {run.started:<20} {minutes(run.seconds):>9}  {outcome}")
    lines.append(f"{'scenario':<{width}}  passed  median  slowest")
    for name in names:
        times = [run.seconds_by_test[name] for run in runs if name in run.seconds_by_test]
        passes = sum(run.passed.get(name, False) for run in runs)
        lines.append(f"{name:<{width}}  {passes:>2}/{len(runs):<3}  {statistics.median(times):5.1f}s"
                     f"  {max(times):6.1f}s")
    lines += [f"run {i} {name}: {text}" for i, run in enumerate(runs, 1)
              for name, text in run.failures.items()]
    missing = [str(i) for i, run in enumerate(runs, 1) if not run.passed]
    if missing:
        lines.append(f"runs without results: {', '.join(missing)}")
    clean = sum(all(run.passed.get(n, False) for run in runs) for n in names)
    lines.append(f"chaos: {clean} of {len(names)} scenarios passed {len(runs)}/{len(runs)}; "
                 f"total {minutes(sum(run.seconds for run in runs))}")
    return lines, bool(names) and clean == len(names) and not missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder holding run-<i>.xml")
    parser.add_argument("--runs", type=int, required=True, help="runs made (N)")
    args = parser.parse_args(argv)
    lines, ok = report([read_run(args.folder / f"run-{i}.xml") for i in range(1, args.runs + 1)])
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
