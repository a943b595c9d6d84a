"""`eldercare up --own-broker`: the broker it starts has anonymous access off, every service
logs in with its own account, and no secret is printed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from ingest.migrate import apply_migrations
from tests.gateway.auth_broker import auth_broker, cli, probe


@pytest.mark.slow
def test_up_starts_a_broker_with_auth_and_the_services_log_in(
    schema_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTT_")}
    env["DATABASE_URL"] = schema_url
    cmd = [sys.executable, "-m", "eldercare", "up", "--own-broker", "--elders", "5"]
    cmd += ["--duration", "15", "--every", "3", "--prefix", topic_prefix, "--seed", "4"]
    log = tmp_path / "up.log"
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        deadline = time.monotonic() + 90
        port = None
        while port is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"eldercare up: broker mqtt://127\.0\.0\.1:(\d+),", log.read_text())
            port = int(found.group(1)) if found else None
            time.sleep(0.2)
        assert port is not None, log.read_text()[-3000:]
        anonymous = probe(port, None, None)
        assert anonymous.connacks and anonymous.connacks[0] != "Success"
        anonymous.close()
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text() + out
    assert proc.returncode == 0, text[-3000:]
    online, devices, stored, dead = map(
        int,
        re.findall(r"devices online (\d+)/(\d+) .* stored (\d+) \| dead letters (\d+)", text)[-1],
    )
    assert online == devices > 0 and stored > 0 and dead == 0
    conf_dir = Path(re.findall(r"configuration in (\S+)\)", text)[-1])
    conf = (conf_dir / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "max_packet_size 16896" in conf
    with psycopg.connect(schema_url) as conn:
        accounts = conn.execute(
            "SELECT username FROM mqtt_accounts WHERE kind = 'service' ORDER BY 1"
        ).fetchall()
    assert [a for (a,) in accounts] == [
        "svc_alerting",
        "svc_dashboard",
        "svc_ingest",
        "svc_simulator",
    ]
    # Secrets stay out of what up prints: no login URL, no `user:secret@`.
    assert not re.search(r"svc_\w+:[A-Za-z0-9_-]{8,}@", text)


@pytest.mark.slow
def test_up_joins_a_broker_with_auth_using_one_account_per_service(
    schema_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    creds_dir = tmp_path / "creds"
    with psycopg.connect(schema_url, autocommit=True) as conn:
        apply_migrations(conn)
    for name in ("ingest", "alerting", "simulator", "dashboard"):
        done = cli(
            schema_url,
            "gateway",
            "creds",
            "issue",
            name,
            "--service",
            "--out",
            str(creds_dir / f"{name}.json"),
        )
        assert done.returncode == 0, done.stderr
        assert (creds_dir / f"{name}.json").stat().st_mode & 0o077 == 0
    with auth_broker(schema_url, tmp_path / "broker", "--prefix", topic_prefix) as broker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MQTT_")}
        env |= {
            "DATABASE_URL": schema_url,
            "MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
            "MQTT_CREDENTIALS_DIR": str(creds_dir),
        }
        cmd = [sys.executable, "-m", "eldercare", "up", "--elders", "5", "--duration", "12"]
        cmd += ["--every", "3", "--prefix", topic_prefix, "--seed", "4"]
        done_up = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    text = done_up.stderr + done_up.stdout
    assert done_up.returncode == 0, text[-3000:]
    online, devices, stored, dead = map(
        int,
        re.findall(r"devices online (\d+)/(\d+) .* stored (\d+) \| dead letters (\d+)", text)[-1],
    )
    assert online == devices > 0 and stored > 0 and dead == 0
    for path in creds_dir.iterdir():
        secret = json.loads(path.read_text())["password"]
        assert secret not in text  # logged in, never printed
    assert "mqtt://svc_ingest@127.0.0.1" in text  # the account is named, its secret is not
