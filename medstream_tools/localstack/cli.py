"""`medstream local up|down|status`: the embedded local stack (broker + Triton) for dev and CI."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from medstream_tools.localstack.broker import BROKERS
from medstream_tools.localstack.process import StackError
from medstream_tools.localstack.stack import StackConfig, down, status, up
from worker.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `local` sub-command."""
    parser = subparsers.add_parser("local", help="run the local broker + Triton stack")
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--broker", choices=BROKERS, default=None,
                        help="broker implementation (default tansu)")
    parser.add_argument("--kafka-port", type=int, help="overrides MEDSTREAM_KAFKA_BOOTSTRAP's port")
    parser.add_argument("--http-port", type=int, help="overrides MEDSTREAM_TRITON_HTTP_URL's port")
    parser.add_argument("--grpc-port", type=int, help="overrides MEDSTREAM_TRITON_GRPC_URL's port")
    parser.add_argument("--metrics-port", type=int,
                        help="overrides MEDSTREAM_TRITON_METRICS_URL's port")
    parser.add_argument("--state-dir", type=Path, help="overrides MEDSTREAM_STATE_DIR")
    parser.add_argument("--model-repository", type=Path, help="default: ./triton_models")
    parser.add_argument("--timeout", type=float, help="seconds to wait for Triton (default 180)")
    parser.add_argument("--reload", action="store_true",
                        help="up: reload every model of an already-running Triton")
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace, settings: Settings) -> StackConfig:
    """Settings-derived StackConfig with the command-line overrides applied."""
    return StackConfig.from_settings(
        settings,
        broker_kind=args.broker,
        kafka_port=args.kafka_port,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        state_dir=args.state_dir,
        model_repository=args.model_repository,
        triton_timeout_s=args.timeout,
    )


def settings_for(cfg: StackConfig, settings: Settings) -> Settings:
    """Settings whose addresses point at the stack described by `cfg`."""
    return settings.model_copy(update={
        "kafka_bootstrap": f"{cfg.kafka_host}:{cfg.kafka_port}",
        "triton_http_url": f"{cfg.triton_host}:{cfg.http_port}",
        "triton_grpc_url": f"{cfg.triton_host}:{cfg.grpc_port}",
        "triton_metrics_url": f"{cfg.triton_host}:{cfg.metrics_port}",
        "state_dir": cfg.state_dir,
    })


def run(args: argparse.Namespace) -> int:
    """Handler: print one line per service; exit 1 with the problem on stderr on failure."""
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO chatter hides our lines
    settings = Settings()
    cfg = config_from_args(args, settings)
    try:
        if args.action == "up":
            lines = up(cfg, settings_for(cfg, settings), reload=args.reload)
            ok = True
        elif args.action == "down":
            lines, ok = down(cfg), True
        else:
            ok, lines = status(cfg)
    except StackError as exc:
        print(f"medstream local {args.action}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0 if ok else 1
