"""Subcommands contributed by `evaluation`: scoring the detectors on a simulated district."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register `eval` (the simulator and scoring load only when it runs)."""
    from evaluation.evaluate import add_eval_command

    add_eval_command(sub)
