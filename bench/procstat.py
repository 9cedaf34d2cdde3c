"""CPU time and memory of a process, read from /proc (Linux only, no psutil needed)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    """CPU seconds (user + system, threads included) and peak RSS (VmHWM) of one process."""

    cpu_s: float
    peak_rss_bytes: int


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
    return ProcSample(cpu_s=(utime + stime) / _TICKS, peak_rss_bytes=peak)


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
    total_cpu, total_rss = 0.0, 0
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
        pending += _children(current)
    return ProcSample(cpu_s=total_cpu, peak_rss_bytes=total_rss)
