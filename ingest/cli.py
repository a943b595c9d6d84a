"""Subcommands contributed by `ingest` to the `eldercare` command."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register this package's subcommands."""
    del sub
