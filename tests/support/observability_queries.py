"""Test helpers: the PromQL of the shipped dashboard and rules, and the metric names that exist.

Shared by tests/unit/test_dashboard.py and tests/integration/test_observability.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from producers.metrics import ProducerMetrics
from worker.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/medstream.json"
RULES = ROOT / "deploy/prometheus/rules.yml"
TRITON_CAPTURE = ROOT / "tests/unit/data/triton-2.51-metrics.txt"
# promtool and prometheus from Debian's `prometheus` package, extracted by `make install`.
PROMETHEUS_TOOLS = ROOT / ".medstream-tools/prometheus/usr/bin"
# Grafana's range macros, replaced by a plain duration before parsing.
GRAFANA_MACROS = ("$__rate_interval", "$__interval", "$__range")
# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="')


@dataclass(frozen=True)
class Selector:
    """One series selector of a query: metric name and the label names it matches on."""

    name: str
    labels: frozenset[str]


def _panels(panels: list[dict]) -> list[dict]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_panels(panel.get("panels", [])))
    return out


def dashboard() -> dict:
    """The dashboard JSON."""
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict]:
    """Every panel, rows' nested panels included."""
    return _panels(dashboard()["panels"])


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel."""
    return [(p["title"], t["expr"]) for p in dashboard_panels() for t in p.get("targets", [])]


def rules() -> list[dict]:
    """Every rule of rules.yml."""
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def rule_queries() -> list[tuple[str, str]]:
    """(alert name, PromQL) for every alerting rule."""
    return [(r["alert"], r["expr"]) for r in rules()]


def parse(expr: str) -> promql_parser.Expr:
    """Parse PromQL after replacing Grafana's range macros; raises ValueError when invalid."""
    for macro in GRAFANA_MACROS:
        expr = expr.replace(macro, "5m")
    return promql_parser.parse(expr)


def _collect(node: promql_parser.Expr, kind: type) -> list:
    found: list = []
    promql_parser.walk(node, lambda n: found.append(n) if isinstance(n, kind) else None)
    return found


def selectors(node: promql_parser.Expr) -> list[Selector]:
    """Every series selector below `node`."""
    return [
        Selector(v.name, frozenset(m.name for m in v.matchers.matchers if m.name != "__name__"))
        for v in _collect(node, promql_parser.VectorSelector)
    ]


def aggregations(node: promql_parser.Expr) -> list[tuple[list[str], list[Selector]]]:
    """(`by` labels, selectors aggregated) for every `... by (...)` aggregation below `node`."""
    out = []
    for agg in _collect(node, promql_parser.AggregateExpr):
        if agg.modifier is not None and agg.modifier.type == promql_parser.AggModifierType.By:
            out.append((list(agg.modifier.labels), selectors(agg.expr)))
    return out


def registry_catalog(metrics: object) -> dict[str, frozenset[str]]:
    """Series names of a metrics dataclass (with _total/_bucket/_sum/_count) -> label names."""
    out: dict[str, frozenset[str]] = {}
    for metric in vars(metrics).values():
        if not isinstance(metric, (Counter, Gauge, Histogram)):
            continue
        labels = frozenset(metric._labelnames)
        if isinstance(metric, Counter):
            out[metric._name + "_total"] = labels
        elif isinstance(metric, Histogram):
            out[metric._name + "_bucket"] = labels | {"le"}
            out[metric._name + "_sum"] = out[metric._name + "_count"] = labels
        else:
            out[metric._name] = labels
    return out


def worker_catalog() -> dict[str, frozenset[str]]:
    """Series the worker exports."""
    return registry_catalog(Metrics.create())


def producer_catalog() -> dict[str, frozenset[str]]:
    """Series the producers and receivers export."""
    return registry_catalog(ProducerMetrics.create(CollectorRegistry()))


def exposition_catalog(text: str) -> dict[str, frozenset[str]]:
    """Series names exactly as exposed in Prometheus text format -> their label names."""
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            out.setdefault(match.group(1), set()).update(_LABEL.findall(match.group(2) or ""))
    return {name: frozenset(labels) for name, labels in out.items()}


def triton_catalog() -> dict[str, frozenset[str]]:
    """nv_* series of the captured Triton 2.51 exposition."""
    return exposition_catalog(TRITON_CAPTURE.read_text())


# Per-GPU series Triton exports only where there are GPUs (Triton's metrics documentation), so
# they are not in the CPU capture above.
TRITON_GPU_SERIES = {
    name: frozenset({"gpu_uuid"})
    for name in (
        "nv_gpu_utilization",
        "nv_gpu_memory_total_bytes",
        "nv_gpu_memory_used_bytes",
        "nv_gpu_power_usage",
        "nv_gpu_power_limit",
        "nv_energy_consumption",
    )
}


def known_series() -> dict[str, frozenset[str]]:
    """Everything a query may select: worker, producers, Triton and Prometheus' own `up`."""
    return {
        **worker_catalog(),
        **producer_catalog(),
        **triton_catalog(),
        **TRITON_GPU_SERIES,
        "up": frozenset(),
    }


def problems(expr: str, series: dict[str, frozenset[str]]) -> list[str]:
    """What is wrong with `expr` against `series`: unknown series, labels or grouping labels."""
    tree = parse(expr)
    found = selectors(tree)
    out = [] if found else ["selects no series"]
    for sel in found:
        if sel.name not in series:
            out.append(f"{sel.name} is not exported")
        elif unknown := sel.labels - series[sel.name] - TARGET_LABELS:
            out.append(f"{sel.name} has no label(s) {sorted(unknown)}")
    for by, below in aggregations(tree):
        available = set(TARGET_LABELS).union(*(series.get(s.name, frozenset()) for s in below))
        if missing := set(by) - available:
            out.append(f"by {sorted(missing)} but the series carry {sorted(available)}")
    return out


def prometheus_binary(name: str) -> str:
    """Path of `promtool` or `prometheus`: in PROMETHEUS_TOOLS (put there by `make install`),
    else on PATH. Fails, never skips, without it: these checks are part of the test suite."""
    for path in (str(PROMETHEUS_TOOLS / name), shutil.which(name)):
        if path and os.access(path, os.X_OK):
            return path
    pytest.fail(f"{name} not found in {PROMETHEUS_TOOLS} or on PATH: run `make install`",
                pytrace=False)
