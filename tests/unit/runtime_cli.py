"""The parser of the runtime commands alone: what `pip install medstream` (no extras) has."""

from __future__ import annotations

import argparse
import importlib

from worker.cli import RUNTIME_MODULES


def runtime_parser() -> argparse.ArgumentParser:
    """`worker`, `topics`, `produce`, `receive`; no tool command, installed or stubbed."""
    parser = argparse.ArgumentParser(prog="medstream")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in RUNTIME_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def assert_runtime_command(command: list[str]) -> None:
    """`command` is `medstream <runtime sub-command> ...` and parses."""
    assert command[0] == "medstream", command
    assert callable(runtime_parser().parse_args(command[1:]).func), command
