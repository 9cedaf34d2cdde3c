"""The `medstream` console command: one entry point, one sub-command module per job.

Each module in `COMMAND_MODULES` exposes `register(subparsers)` which adds its own
sub-parser and sets `func(args) -> int` as the handler.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType

COMMAND_MODULES: tuple[str, ...] = (
    # one line per sub-command module; each helper adds its own
    "worker.localstack.cli",
    "worker.topics",
    "worker.demo",
    "worker.top",
    "producers.cli",
    "worker.run",
    "bench.cli",
    "triton_models.cli",
)


def _import_hiding_argv(name: str) -> ModuleType:
    """Import a command module with our own options hidden from sys.argv.

    faust reads `--loop`/`-L`/`--datadir` from sys.argv when first imported and switches the
    event loop, so `medstream produce scans --loop` crashed while the parser was being built.
    """
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        return importlib.import_module(name)
    finally:
        sys.argv = argv


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="medstream", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        _import_hiding_argv(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, configure logging and run the chosen sub-command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
