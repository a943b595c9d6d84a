"""The `eldercare` command line: each package contributes its own subcommands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import alerting.cli
import alerting.dispatch_cli
import alerting.notify.cli
import dashboard.cli
import eldercare.doctor
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
    eldercare.doctor,
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
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("ELDERCARE_LOG_FORMAT", "text"),
        help="log lines as text or as one JSON object each (default text, or "
        "$ELDERCARE_LOG_FORMAT)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for provider in _PROVIDERS:
        provider.add_commands(sub)
    return parser


class JsonFormatter(logging.Formatter):
    """One JSON object per line, the same fields for every process of the platform.

    Fields: `ts` (ISO 8601, UTC, milliseconds), `ts_ms` (Unix ms), `level`, `logger`,
    `message`, `process` (the command, e.g. `ingest`), `pid`, `thread`, and `exc` with the
    traceback when there is one.
    """

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, tz=UTC)
        out = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "ts_ms": int(record.created * 1000),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": self.process,
            "pid": record.process,
            "thread": record.threadName,
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str, fmt: str, process: str = "") -> None:
    """Root logging on stderr: text for people, `json` for log collectors."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(process or "eldercare"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format, args.command)
    handler: Any = getattr(args, "handler", None)
    if handler is None:
        parser.error("missing subcommand")
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130
