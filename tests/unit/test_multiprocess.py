"""`medstream worker --processes N`: the supervisor (children are stand-in processes here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from worker.cli import build_parser
from worker.multiprocess import child_environments
from worker.settings import Settings


def test_children_get_distinct_ports_and_ids(tmp_path) -> None:
    settings = Settings(web_port=7000, worker_id="w", state_dir=tmp_path)
    envs = child_environments(settings, 3, {"MEDSTREAM_APP_ID": "group"})
    assert [e["MEDSTREAM_WEB_PORT"] for e in envs] == ["7000", "7001", "7002"]
    assert [e["MEDSTREAM_WORKER_ID"] for e in envs] == ["w-0", "w-1", "w-2"]
    assert all(e["MEDSTREAM_APP_ID"] == "group" for e in envs)  # one consumer group


def test_the_worker_command_takes_processes() -> None:
    args = build_parser().parse_args(["worker", "--processes", "2"])
    assert args.processes == 2


def _supervisor(tmp_path: Path, child: str) -> subprocess.Popen:
    """A supervisor of 2 children running `child` (Python), each writing its pid file."""
    script = textwrap.dedent(f"""
        import sys
        from worker import multiprocess
        from worker.settings import Settings
        child = {child!r}
        multiprocess.child_command = lambda level: [sys.executable, "-c", child]
        sys.exit(multiprocess.supervise(Settings(state_dir={str(tmp_path)!r}), 2))
    """)
    env = {**os.environ, "PIDS": str(tmp_path), "PYTHONPATH": str(Path.cwd())}
    return subprocess.Popen([sys.executable, "-c", script], env=env)


def _pids(tmp_path: Path, count: int) -> list[int]:
    while len(files := sorted(tmp_path.glob("*.pid"))) < count:
        time.sleep(0.05)
    return [int(f.read_text()) for f in files]


_CHILD = """
import os, pathlib, signal, sys, time
port = os.environ["MEDSTREAM_WEB_PORT"]
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
pathlib.Path(os.environ["PIDS"], port + ".pid").write_text(str(os.getpid()))
if os.environ["MEDSTREAM_WORKER_ID"].endswith("-1") and os.environ.get("FAIL"):
    sys.exit(70)
while True:
    time.sleep(0.1)
"""


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sigterm_is_forwarded_to_every_child(tmp_path) -> None:
    supervisor = _supervisor(tmp_path, _CHILD)
    pids = _pids(tmp_path, 2)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(60) == 0
    assert all(_gone(pid) for pid in pids)


def test_a_child_that_exits_stops_the_set_with_its_code(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FAIL", "1")
    supervisor = _supervisor(tmp_path, _CHILD)
    assert supervisor.wait(60) == 70
    assert all(_gone(pid) for pid in _pids(tmp_path, 2))
