"""The chaos suite's harness without a stack: scripts/chaos_report.py on junit files, and the
port claim (tests/chaos/processes.py) against real listening processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medstream_tools.ports import free_port
from medstream_tools.soak.waiting import wait_for
from tests.chaos.processes import (
    claim_ports,
    describe,
    listening_inodes,
    require_free,
    shm_regions,
    socket_owners,
)

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


def orphan_listener(port: int, cwd: Path, state_dir: Path | None = None) -> int:
    """A process listening on `port` whose parent already exited (parent pid 1), as a worker
    of a killed chaos session is, with MEDSTREAM_STATE_DIR=`state_dir` if given; its pid."""
    pid_file = cwd / "pid"
    env = {**os.environ, **({"MEDSTREAM_STATE_DIR": str(state_dir)} if state_dir else {})}
    subprocess.run(["setsid", "--fork", sys.executable, "-c", LISTENER, str(port), str(pid_file)],
                   cwd=cwd, env=env, check=True)
    pid = wait_for("the orphan's pid", lambda: pid_file.exists() and int(pid_file.read_text() or 0),
                   30, 0.05)
    wait_for("the orphan to listen", lambda: port in _listening(pid), 30, 0.05)
    return pid


def _listening(pid: int) -> set[int]:
    """The ports `pid` listens on."""
    return {port for port, inodes in listening_inodes().items() if pid in socket_owners(inodes)}


@pytest.mark.parametrize("by", ["cwd", "cwd removed (make chaos)", "MEDSTREAM_STATE_DIR"])
def test_claim_kills_a_leftover_of_the_state_dir(tmp_path: Path, by: str) -> None:
    port, state, elsewhere = free_port(), tmp_path / "state", tmp_path / "elsewhere"
    state.mkdir(), elsewhere.mkdir()
    pid = (orphan_listener(port, elsewhere, state / "scenario" / "w0") if by.startswith("MED")
           else orphan_listener(port, state))
    if by.startswith("cwd removed"):  # `make chaos` starts with rm -rf of the state dir
        shutil.rmtree(state)
        state.mkdir()
    killed, foreign = claim_ports([port], state)
    assert len(killed) == 1 and f"port {port}: pid {pid} (ppid 1)" in killed[0] and not foreign
    assert not Path(f"/proc/{pid}").exists()
    require_free(port, "the test")


def test_claim_names_a_process_it_did_not_start(tmp_path: Path) -> None:
    port, elsewhere = free_port(), tmp_path / "elsewhere"
    elsewhere.mkdir()
    pid = orphan_listener(port, elsewhere)
    try:
        killed, foreign = claim_ports([port], tmp_path / "state")
        assert not killed and len(foreign) == 1
        assert foreign[0].startswith(f"port {port}: pid {pid} (ppid 1): ") and "python" in foreign[0]
        with pytest.raises(RuntimeError, match=f"port {port} for worker w0 is taken by pid {pid}"):
            require_free(port, "worker w0")
    finally:
        os.kill(pid, 9)


def test_claim_spares_a_live_session_in_the_same_state_dir(tmp_path: Path) -> None:
    """A process whose parent still runs is another session's, even in our state dir."""
    port, pid_file = free_port(), tmp_path / "pid"
    child = subprocess.Popen([sys.executable, "-c", LISTENER, str(port), str(pid_file)],
                             cwd=tmp_path)
    try:
        wait_for("the listener", lambda: port in _listening(child.pid), 30, 0.05)
        killed, foreign = claim_ports([port], tmp_path)
        assert not killed and foreign == [f"port {port}: {describe(child.pid)}"]
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_shm_regions_are_those_named_by_the_group() -> None:
    region = Path("/dev/shm", f"medstream_chaos_test_{os.getpid()}")
    region.write_bytes(b"x")
    group = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", region.name,
                              "not_a_region"], start_new_session=True)
    try:
        cmdline = Path(f"/proc/{group.pid}/cmdline")  # the parent's until the child has exec'd
        wait_for("the child's exec", lambda: region.name.encode() in cmdline.read_bytes(), 30, 0.01)
        assert shm_regions(group.pid) == [region]
    finally:
        group.kill()
        group.wait()
        region.unlink()
