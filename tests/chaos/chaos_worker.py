"""chaos_stack.py imports the worker subprocess from here; it lives in medstream_tools.soak.worker
(the soak uses it too). Only a re-export: import from medstream_tools.soak.worker instead."""

from medstream_tools.soak.worker import ROOT, WorkerProcess

__all__ = ["ROOT", "WorkerProcess"]
