"""The `eldercare` command line: each package contributes its own subcommands."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import alerting.cli
import alerting.dispatch_cli
import alerting.notify.cli
import dashboard.cli
import eldercare.up
import evaluation.cli
import firmware_sim.cli
import gateway.cli
import ingest.cli

Handler = Callable[[argparse.Namespace], int]
_PROVIDERS = (
    firmware_sim.cli,
    ingest.cli,
    alerting.cli,
    alerting.dispatch_cli,
    alerting.notify.cli,
    dashboard.cli,
    eldercare.up,
    evaluation.cli,
    gateway.cli,
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser: every package's `add_commands(subparsers)` in turn."""
    parser = argparse.ArgumentParser(
        prog="eldercare", description="Smart-eldercare telemetry platform."
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("ELDERCARE_LOG_LEVEL", "INFO"),
        help="logging level (default INFO, or $ELDERCARE_LOG_LEVEL)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for provider in _PROVIDERS:
        provider.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Any = getattr(args, "handler", None)
    if handler is None:
        parser.error("missing subcommand")
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130
