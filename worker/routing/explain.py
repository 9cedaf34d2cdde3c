"""`medstream route explain FILE|DIR...`: a dry run of the routing rules on DICOM files.

For each file (folders are walked), prints the routing attributes (coded values and sizes
only: never names, identifiers, UIDs of instances or free text), the decision and the rule
that made it, or why no rule matched (each rule's first failing condition). Reads headers
only (no pixel data) and needs neither Kafka nor Triton; the check of the rules against the
models' declarations needs Triton and runs when the worker starts.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from worker.contracts.skip import SkipReason
from worker.errors import PoisonMessage
from worker.routing.attributes import Lookup, dataset_lookup, reported, sop_class_name
from worker.routing.loader import RulesError, load_rules
from worker.routing.matcher import Router, RouteTo, SkipAs, why_not
from worker.routing.rules import RuleSet, SkipAction
from worker.scan_routing import read_header
from worker.settings import Settings


def dicom_files(paths: Sequence[Path]) -> Iterator[Path]:
    """The files named, and every file below the folders named, in sorted order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def _attributes(lookup: Lookup) -> str:
    parts = []
    for keyword, value in reported(lookup).items():
        if keyword == "SOPClassUID" and isinstance(value, str):
            value = sop_class_name(value)
        parts.append(f"{keyword}={'-' if value is None else value}")
    return " ".join(parts)


def explain_one(router: Router, lookup: Lookup, verbose: bool) -> tuple[list[str], str]:
    """The lines that explain one instance's decision, and the decision in short."""
    decision = router.decide(lookup)
    lines = [f"  {_attributes(lookup)}"]
    if isinstance(decision, RouteTo):
        short = f"-> {decision.model}"
        outcome = f"{short} (rule {decision.rule.name!r}, line {decision.rule.line})"
    else:
        short = outcome = f"-> skipped: {decision.reason.value}"
        if decision.rule is not None and isinstance(decision.rule.action, SkipAction):
            short += f" {decision.rule.name!r}"
            outcome += (f" (rule {decision.rule.name!r}, line {decision.rule.line}: "
                        f"{decision.rule.action.text})")
    if verbose or (isinstance(decision, SkipAs) and decision.reason is SkipReason.NO_ROUTE):
        for rule in router.rules.rules:
            if rule is decision.rule:
                break
            lines.append(f"  rule {rule.name!r} (line {rule.line}): {why_not(rule.when, lookup)}")
    lines.append(f"  {outcome}")
    return lines, short


def explain(paths: Sequence[Path], rules: RuleSet,
            verbose: bool = False) -> tuple[list[str], Counter[str]]:
    """The report for `paths` and the count of each decision."""
    router, out, counts = Router(rules), [], Counter[str]()
    for path in dicom_files(paths):
        out.append(str(path))
        try:
            header = read_header(path.read_bytes())
        except (OSError, PoisonMessage) as exc:
            out.append(f"  not readable as DICOM: {exc}")
            counts["not DICOM"] += 1
            continue
        lines, short = explain_one(router, dataset_lookup(header), verbose)
        out += lines
        counts[short] += 1
    return out, counts


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `medstream route explain`."""
    route = subparsers.add_parser("route", help="the scan routing rules (docs/routing.md)")
    sub = route.add_subparsers(dest="route_command", required=True)
    parser = sub.add_parser("explain", help="which rule routes each DICOM file, or why none does")
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR")
    parser.add_argument("--rules", type=Path, default=None,
                        help="rules file (default: MEDSTREAM_ROUTING__RULES, else "
                             "triton_models/routing.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also say why each earlier rule did not match")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    path = args.rules or Settings().routing.rules
    try:
        rules = load_rules(path)
    except RulesError as exc:
        print(f"medstream route explain: {exc}", file=sys.stderr)
        return 2
    print(f"rules: {path} ({len(rules.rules)} rules; models {', '.join(rules.models) or 'none'})")
    lines, counts = explain(args.paths, rules, args.verbose)
    print("\n".join(lines))
    print("summary: " + "; ".join(f"{n} {what}" for what, n in counts.most_common()))
    return 0
