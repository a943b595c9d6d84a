"""`eldercare ingest` yields the CPU: every one of its threads runs at INGEST_NICE."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from eldercare.broker import free_port

ROOT = Path(__file__).resolve().parents[2]


def _thread_nices(pid: int) -> dict[str, int]:
    """Thread name -> nice value, from /proc (field 19 of each task's stat)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[f"{name}-{task.name}"] = int(fields[16])
    return out


@pytest.mark.parametrize("nice", [0, 7])
def test_every_ingest_thread_runs_at_the_configured_nice(
    migrated_url: str, mqtt_url: str, topic_prefix: str, nice: int
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": migrated_url,
        "MQTT_URL": mqtt_url,
        "INGEST_TOPIC_PREFIX": topic_prefix,
        "INGEST_CLIENT_ID": f"ingest-nice-{uuid.uuid4().hex[:8]}",
        "INGEST_SHARE_GROUP": "",
        "INGEST_NICE": str(nice),
        "INGEST_METRICS_PORT": str(port := free_port()),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "eldercare", "ingest"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Ready: subscribed and consuming, every thread of the service started.
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("ingest did not become ready")
        nices = _thread_nices(proc.pid)
        assert len(nices) >= 3, nices  # main, consumer, paho's network thread at least
        assert set(nices.values()) == {nice}, nices
    finally:
        proc.terminate()
        proc.wait(20)
