"""The sender killed with SIGKILL mid-delivery: after a restart every notification arrives,
at least once, a repeat only under the same delivery id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.dashboard.conftest import DashFleet
from tests.notify.conftest import family_member, wait_until, webhook
from tests.notify.standin import StandIn

N = 100


def _start(schema_url: str, key_path: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": schema_url,
        "NOTIFY_VAPID_KEY_PATH": str(key_path),
        "NOTIFY_ALLOW_HTTP_LOOPBACK": "1",
        "NOTIFY_WORKERS": "4",
        "NOTIFY_BATCH": "8",
        "NOTIFY_LEASE_S": "2",
        "NOTIFY_POLL_S": "0.2",
    }
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "eldercare", "notify", "--no-migrate"],
        env=env, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip


def _cursor(schema_url: str) -> bool:
    with psycopg.connect(schema_url) as conn:
        return conn.execute("SELECT 1 FROM notify_cursor").fetchone() is not None


def _sent(schema_url: str, alert_id: str) -> int:
    with psycopg.connect(schema_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM notify_deliveries WHERE alert_id = %s AND status = 'sent'",
            (alert_id,),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow
def test_sigkill_mid_delivery_loses_nothing(
    schema_url: str, dash_fleet: DashFleet, raise_alert: Any, standin: StandIn, tmp_path: Path
) -> None:
    elder = dash_fleet.elders[0]
    uid, _ = family_member(schema_url, (elder,))
    for i in range(N):
        webhook(schema_url, f"{standin.url}/w/{i}", user_id=uid)
    standin.delay_s = 0.1  # requests in flight when the kill comes
    log = tmp_path / "notify.log"
    proc = _start(schema_url, tmp_path / "vapid.pem", log)
    try:
        # Started: its cursor begins at the stream's head the first time.
        wait_until(lambda: _cursor(schema_url), 60, "the notifier's cursor")
        time.sleep(0.5)
        alert = raise_alert(elder)
        wait_until(lambda: len(standin.received) >= 20, 30, "the first deliveries")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        at_kill = len(standin.received)
        assert at_kill < N, "all delivered before the kill: nothing was pending"
        assert _sent(schema_url, alert.alert_id) < N
        proc = _start(schema_url, tmp_path / "vapid.pem", log)
        wait_until(lambda: _sent(schema_url, alert.alert_id) == N, 60, "every delivery sent")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    ids_by_path: dict[str, set[str]] = defaultdict(set)
    for r in standin.received:
        ids_by_path[r.path].add(r.headers["webhook-id"])
    assert set(ids_by_path) == {f"/w/{i}" for i in range(N)}  # none lost
    assert all(len(ids) == 1 for ids in ids_by_path.values())  # repeats keep their id
    assert len({next(iter(ids)) for ids in ids_by_path.values()}) == N
    print(f"requests {len(standin.received)} for {N} deliveries; {at_kill} before the kill")
