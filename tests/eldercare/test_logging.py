"""`--log-format json`: one JSON object per line, the same fields from every command."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from eldercare.cli import JsonFormatter, configure_logging

FIELDS = {"ts", "ts_ms", "level", "logger", "message", "process", "pid", "thread"}


def test_a_service_logs_json_lines_with_the_common_fields(schema_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": schema_url}
    done = subprocess.run(
        [sys.executable, "-m", "eldercare", "--log-format", "json", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert lines, "migrations are logged"
    for line in lines:
        assert set(line) - {"exc"} == FIELDS, line
        assert line["process"] == "db"
        assert line["ts"].endswith("Z") and isinstance(line["ts_ms"], int)
    assert any(line["message"].startswith("applied migration") for line in lines)


def test_environment_chooses_json_too(schema_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": schema_url, "ELDERCARE_LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-m", "eldercare", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    first = done.stderr.splitlines()[0]
    assert json.loads(first)["level"] == "INFO"


def test_exceptions_keep_their_traceback_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json", "ingest")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("ingest.test").exception("failed")
    err = capsys.readouterr().err.strip().splitlines()
    record = json.loads(err[-1])
    assert record["process"] == "ingest" and record["level"] == "ERROR"
    assert "ValueError: boom" in record["exc"]
    configure_logging("WARNING", "text")
    assert not isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
