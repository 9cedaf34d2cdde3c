"""Per-scenario pass counts over repeated chaos runs (`make chaos REPEAT=N`).

Reads `run-1.xml` ... `run-N.xml` (pytest's junit XML, one per run) from a folder and prints,
per test, how many runs it passed; a run without its XML counts as failed for every test.
Exits 1 unless every test passed in every run.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path


def outcomes(path: Path) -> dict[str, bool]:
    """`file::test` -> passed, for one junit XML file."""
    result: dict[str, bool] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        result[name] = not any(child.tag in ("failure", "error", "skipped") for child in case)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder holding run-<i>.xml")
    parser.add_argument("--runs", type=int, required=True, help="runs made (N)")
    args = parser.parse_args(argv)

    runs = [args.folder / f"run-{i}.xml" for i in range(1, args.runs + 1)]
    results = [outcomes(path) if path.exists() else {} for path in runs]
    names = sorted({name for result in results for name in result})
    passes = Counter(name for result in results for name, ok in result.items() if ok)
    width = max((len(n) for n in names), default=10)
    for name in names:
        print(f"{name:<{width}}  {passes[name]}/{args.runs}")
    missing = [path.name for path, result in zip(runs, results, strict=True) if not result]
    if missing:
        print(f"runs without results: {', '.join(missing)}")
    flaky = [n for n in names if passes[n] < args.runs]
    print(f"chaos: {len(names) - len(flaky)} of {len(names)} scenarios passed {args.runs}/"
          f"{args.runs}")
    return 0 if names and not flaky and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
