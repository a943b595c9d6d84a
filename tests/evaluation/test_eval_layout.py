"""The services never import the engineering tools: alerting stays free of the simulator."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("firmware_sim", "evaluation")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


@pytest.mark.parametrize("package", ["alerting", "gateway", "ingest", "dashboard"])
def test_services_do_not_import_the_simulator_or_the_evaluation_tools(package: str) -> None:
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert not offenders


def test_eval_is_a_subcommand_of_the_evaluation_package() -> None:
    from eldercare.cli import build_parser

    args = build_parser().parse_args(["eval", "--elders", "3"])
    assert args.handler.__module__ == "evaluation.evaluate"
    assert not (ROOT / "alerting" / "evaluate.py").exists()
