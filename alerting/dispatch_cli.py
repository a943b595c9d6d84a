"""Operator subcommands for dispatch: centre duty, coverage report, answer-time KPIs."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register this module's subcommands."""
    del sub
