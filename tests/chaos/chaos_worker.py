"""The chaos scenarios' worker subprocess: medstream_tools.soak.worker's WorkerProcess that
cannot outlive the test session and never talks to someone else's worker.

- It runs under `setpriv --pdeathsig KILL`: when the pytest process dies (SIGKILL, a CI
  timeout), the kernel kills the worker too, so no stray worker keeps its web port.
- It refuses to start while another process listens on its web port (naming it): the
  harness would otherwise probe `/ready` and `/metrics` of that other worker.
"""

from __future__ import annotations

from processes import require_free

from medstream_tools.soak.worker import ROOT, WorkerProcess

__all__ = ["ROOT", "ChaosWorker"]


class ChaosWorker(WorkerProcess):
    """A WorkerProcess killed with its parent, started only on a free web port."""

    def argv(self) -> list[str]:
        return ["setpriv", "--pdeathsig", "KILL", "--", *super().argv()]

    def start(self) -> ChaosWorker:
        require_free(self.web_port, f"worker {self.name}")
        super().start()
        return self
