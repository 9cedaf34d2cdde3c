"""The chaos suite's harness without a stack: scripts/chaos_report.py on junit files, and the
port claim (tests/chaos/processes.py) against real listening processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.chaos.processes import claim_ports, listening_inodes, require_free, socket_owners
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="2" time="{total}" timestamp="2026-12-01T02:31:00.1">
<testcase classname="tests.chaos.test_a" name="test_one" time="{one}">{failure}</testcase>
<testcase classname="tests.chaos.test_b" name="test_two" time="20.0"/>
</testsuite></testsuites>"""


def write_runs(folder: Path, *ones: float, failing: int | None = None) -> None:
    for i, one in enumerate(ones, 1):
        failure = '<failure message="AssertionError: 3 inputs missing&#10;more">x</failure>'
        (folder / f"run-{i}.xml").write_text(JUNIT.format(
            total=one + 20, one=one, failure=failure if i == failing else ""))


def chaos_report(folder: Path, runs: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "chaos_report.py"), str(folder),
                           "--runs", str(runs)], capture_output=True, text=True, check=False)


def test_report_counts_passes_and_times_per_scenario(tmp_path: Path) -> None:
    write_runs(tmp_path, 10.0, 30.0, 20.0)
    result = chaos_report(tmp_path, 3)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert any(line.split()[:3] == ["test_a::test_one", "3/3", "20.0s"] and line.endswith("30.0s")
               for line in lines)
    assert lines[-1] == "chaos: 2 of 2 scenarios passed 3/3; total 2m00.0s"


def test_report_fails_on_a_failed_or_missing_run(tmp_path: Path) -> None:
    write_runs(tmp_path, 10.0, 12.0, failing=2)
    result = chaos_report(tmp_path, 3)
    assert result.returncode == 1
    assert "run 2 test_a::test_one: AssertionError: 3 inputs missing" in result.stdout
    assert "runs without results: 3" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("chaos: 0 of 2 scenarios passed 3/3")


LISTENER = ("import os, socket, sys, time\n"
            "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
            "open(sys.argv[2], 'w').write(str(os.getpid())); time.sleep(120)\n")


def orphan_listener(port: int, cwd: Path) -> int:
    """A process listening on `port` whose parent already exited (parent pid 1), as a worker
    of a killed chaos session is; its pid."""
    pid_file = cwd / "pid"
    subprocess.run(["setsid", "--fork", sys.executable, "-c", LISTENER, str(port), str(pid_file)],
                   cwd=cwd, check=True)
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    while port not in _listening(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid


def _listening(pid: int) -> set[int]:
    """The ports `pid` listens on."""
    return {port for port, inodes in listening_inodes().items() if pid in socket_owners(inodes)}


def test_claim_kills_a_leftover_of_the_state_dir(tmp_path: Path) -> None:
    port = free_port()
    pid = orphan_listener(port, tmp_path)
    killed = claim_ports([port], tmp_path)
    assert len(killed) == 1 and f"pid {pid} (ppid 1)" in killed[0]
    assert not Path(f"/proc/{pid}").exists()
    require_free(port, "the test")


def test_claim_names_a_process_it_did_not_start(tmp_path: Path) -> None:
    port, elsewhere = free_port(), tmp_path / "elsewhere"
    elsewhere.mkdir()
    pid = orphan_listener(port, elsewhere)
    try:
        with pytest.raises(RuntimeError, match=f"port {port}: pid {pid} \\(ppid 1\\): .*python"):
            claim_ports([port], tmp_path / "state")
        with pytest.raises(RuntimeError, match=f"port {port} for worker w0 is taken by pid {pid}"):
            require_free(port, "worker w0")
    finally:
        os.kill(pid, 9)
