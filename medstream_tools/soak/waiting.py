"""Polling with a deadline: no timing asserts, a deadline only turns "never happened" into a
clear failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 120.0,
             every_s: float = 0.5, detail: Callable[[], str] | None = None) -> Any:
    """Poll `check` until truthy and return its result; AssertionError naming `what` (and
    `detail()`, e.g. a log tail) after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(every_s)
    message = f"timed out after {timeout_s:.0f}s waiting for {what}"
    raise AssertionError(f"{message}:\n{detail()}" if detail else message)
