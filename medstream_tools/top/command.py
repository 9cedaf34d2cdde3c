"""`medstream top`: the dashboard's key figures in a terminal, live from `/metrics`.

Polls the worker's `/metrics` and Triton's metrics port, computes rates from successive
scrapes and percentiles from histogram buckets (Prometheus' `histogram_quantile` rule), and
redraws one frame per interval. Aggregation (frame.py) and rendering (render.py) are pure
functions; `run` is the loop.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from collections.abc import Iterator

from medstream_tools.top.frame import compute_frame
from medstream_tools.top.promstats import Snapshot, parse_metrics
from medstream_tools.top.render import render
from worker.settings import Settings

CLEAR = "\x1b[H\x1b[2J"


def scrape(url: str, timeout_s: float) -> Snapshot:
    """GET `url` and parse it; a failure becomes a Snapshot carrying the error."""
    at = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return parse_metrics(resp.read().decode("utf-8"), at)
    except (OSError, ValueError) as exc:
        return Snapshot(at=at, error=f"{type(exc).__name__}: {exc}")


def frames(worker_url: str, triton_url: str, interval_s: float, timeout_s: float) -> Iterator[str]:
    """Rendered frames, one per interval, each comparing against the previous scrape."""
    prev_w = prev_t = None
    while True:
        cur_w, cur_t = scrape(worker_url, timeout_s), scrape(triton_url, timeout_s)
        yield render(compute_frame(prev_w, cur_w, prev_t, cur_t), worker_url, triton_url)
        prev_w, prev_t = cur_w, cur_t
        time.sleep(interval_s)


def run(args: argparse.Namespace) -> int:
    """Entry point of `medstream top`."""
    settings = Settings()
    worker_url = args.url or f"http://{settings.web_host}:{settings.web_port}/metrics"
    triton_url = args.triton_url or f"http://{settings.triton_metrics_url}/metrics"
    if args.once:
        w, t = scrape(worker_url, args.timeout), scrape(triton_url, args.timeout)
        sys.stdout.write(render(compute_frame(None, w, None, t), worker_url, triton_url))
        return 0 if w.error is None else 1
    clear = CLEAR if sys.stdout.isatty() else ""
    try:
        for text in frames(worker_url, triton_url, args.interval, args.timeout):
            sys.stdout.write(clear + text + ("" if clear else "\n"))
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `top` sub-command."""
    p = subparsers.add_parser("top", help="live terminal view of the worker's and Triton's metrics")
    p.add_argument(
        "--url", help="worker metrics URL (default http://MEDSTREAM_WEB_HOST:PORT/metrics)"
    )
    p.add_argument(
        "--triton-url", help="Triton metrics URL (default from MEDSTREAM_TRITON_METRICS_URL)"
    )
    p.add_argument("--interval", type=float, default=2.0, help="seconds between frames (default 2)")
    p.add_argument(
        "--timeout", type=float, default=2.0, help="scrape timeout in seconds (default 2)"
    )
    p.add_argument(
        "--once", action="store_true", help="print one frame (totals since start) and exit"
    )
    p.set_defaults(func=run)
