"""Who holds a chaos port, the leftovers of a chaos session that was killed, and the shared
memory a SIGKILLed Triton leaves behind.

A chaos session owns its ports and its state dir. A process still listening on one of its
ports when a session starts is either a leftover of an earlier session in the same state dir
(an orphan, parent pid 1, whose working directory or MEDSTREAM_STATE_DIR lies in the state
dir: its process group is killed) or someone else's (the session fails, naming its pid and
command). Everything read here comes from /proc (Linux).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

LISTEN = "0A"  # TCP state in /proc/net/tcp


def listening_inodes() -> dict[int, set[str]]:
    """Local port -> inodes of the sockets listening on it (IPv4 and IPv6, any address)."""
    found: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == LISTEN:
                found.setdefault(int(fields[1].rsplit(":", 1)[1], 16), set()).add(fields[9])
    return found


def socket_owners(inodes: set[str]) -> set[int]:
    """Pids with a file descriptor on one of the socket `inodes`."""
    targets, owners = {f"socket:[{i}]" for i in inodes}, set()
    if not targets:
        return owners
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in targets for fd in (entry / "fd").iterdir()):
                owners.add(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return owners


def describe(pid: int) -> str:
    """`pid <n> (ppid <p>): <command line>`, shortened."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip()
        ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
    except OSError:
        return f"pid {pid} (gone)"
    return f"pid {pid} (ppid {ppid}): {command[:200]}"


def _within(path: str, folder: Path) -> bool:
    path = path.removesuffix(" (deleted)")  # a state dir removed under a running process
    return path == str(folder) or path.startswith(f"{folder}/")


def leftover_of(pid: int, state_dir: Path) -> bool:
    """An orphan (parent pid 1) started in `state_dir`: its cwd or MEDSTREAM_STATE_DIR is there."""
    proc = Path(f"/proc/{pid}")
    try:
        if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1] != "1":
            return False
        if _within(os.readlink(proc / "cwd"), state_dir):
            return True
        environ = proc.joinpath("environ").read_bytes().split(b"\0")
    except OSError:
        return False
    prefix = b"MEDSTREAM_STATE_DIR="
    return any(_within(v[len(prefix):].decode(errors="replace"), state_dir)
               for v in environ if v.startswith(prefix))


def kill_group(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM the process group of `pid`, SIGKILL it after `grace_s`; wait until `pid` is gone
    (an orphan is reaped by init)."""
    try:
        group = os.getpgid(pid)
        os.killpg(group, signal.SIGTERM)
        _wait_gone(pid, grace_s)
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        return
    _wait_gone(pid, grace_s)


def _wait_gone(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def claim_ports(ports: Iterable[int], state_dir: Path) -> tuple[list[str], list[str]]:
    """Free `ports` of leftovers from `state_dir`; (the leftovers killed, the other processes
    listening on one of the ports), one `port <n>: pid ...` line each."""
    killed, foreign = [], []
    for port in ports:
        inodes = listening_inodes().get(port, set())  # afresh: a kill may have freed it
        owners = socket_owners(inodes)
        if inodes and not owners:
            foreign.append(f"port {port}: a process whose descriptors cannot be read")
        for pid in sorted(owners):
            if leftover_of(pid, state_dir):
                killed.append(f"port {port}: {describe(pid)}")
                kill_group(pid)
            else:
                foreign.append(f"port {port}: {describe(pid)}")
    return killed, foreign


def shm_regions(group: int) -> list[Path]:
    """The /dev/shm files named on the command lines of process group `group`: Triton's backend
    stubs name their shared-memory regions there, and a SIGKILL of the group leaves them behind."""
    regions = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or os.getpgid(int(entry.name)) != group:
                continue
            words = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        regions += [Path("/dev/shm", w) for w in words
                    if w and "/" not in w and Path("/dev/shm", w).is_file()]
    return regions


def require_free(port: int, what: str) -> None:
    """RuntimeError naming the process that listens on `port` (needed for `what`)."""
    owners = socket_owners(listening_inodes().get(port, set()))
    if owners:
        raise RuntimeError(f"port {port} for {what} is taken by "
                           + "; ".join(describe(pid) for pid in sorted(owners)))
