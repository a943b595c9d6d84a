"""`eldercare up`: the whole platform on one machine, with a simulated district."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register `up`."""
    del sub
