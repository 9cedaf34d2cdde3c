"""CPU time and memory of a process, read from /proc (Linux only, no psutil needed)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    """CPU seconds (user + system, threads included), peak RSS (VmHWM) and run-queue wait of
    one process: seconds its threads were runnable but waited for a CPU (a busy machine)."""

    cpu_s: float
    peak_rss_bytes: int
    runq_wait_s: float = 0.0


def _runq_wait_s(pid: int) -> float:
    """Sum of /proc/<pid>/task/*/schedstat run-queue delays (0 where schedstat is missing)."""
    total_ns = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total_ns += int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    except OSError:
        return 0.0
    return total_ns / 1e9


def sample(pid: int) -> ProcSample:
    """Read the current CPU time and peak resident set of `pid` (raises OSError if it is gone)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # the command name may contain spaces: fields start after the closing parenthesis
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
            break
    return ProcSample(cpu_s=(utime + stime) / _TICKS, peak_rss_bytes=peak,
                      runq_wait_s=_runq_wait_s(pid))


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return kids


def sample_tree(pid: int) -> ProcSample:
    """CPU time and peak RSS summed over `pid` and its descendants (e.g. Triton's backend stubs).

    Descendants that exit between samples take their CPU time with them; long-lived process
    trees (a server and its workers) are what this is for.
    """
    total_cpu, total_rss, total_wait = 0.0, 0, 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            one = sample(current)
        except OSError:
            if current == pid:
                raise
            continue
        total_cpu += one.cpu_s
        total_rss += one.peak_rss_bytes
        total_wait += one.runq_wait_s
        pending += _children(current)
    return ProcSample(cpu_s=total_cpu, peak_rss_bytes=total_rss, runq_wait_s=total_wait)
