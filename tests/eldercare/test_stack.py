"""`eldercare up` on a machine without a database: the embedded server, the console, clean stops.

The shared PostgreSQL keeps running (other tests use it): the "local" database the platform
looks for is pointed at a port nothing listens on, and `DATABASE_URL` is unset.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest

from eldercare.stack import _redacted


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bare_env(mqtt_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["MQTT_URL"] = mqtt_url
    env["ELDERCARE_LOCAL_DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{_free_port()}/x"
    env["ELDERCARE_DATA_DIR"] = str(data_dir)
    return env


def _servers_on(data_dir: Path) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if any(str(data_dir) in part for part in cmd):
            out.append(proc)
    return out


def _wait_for(log: Path, pattern: str, proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        text = log.read_text()
        found = re.search(pattern, text)
        if found:
            return found.group(1) if found.groups() else found.group(0)
        assert proc.poll() is None, text[-4000:]
        assert time.monotonic() < deadline, text[-4000:]
        time.sleep(0.5)


def _alerts_seen_by_console(base: str) -> int:
    with httpx.Client(base_url=base, timeout=10) as client:
        login = {"username": "admin", "password": "eldercare-demo"}
        assert client.post("/api/v1/auth/login", json=login).status_code == 200
        page = client.get("/api/v1/alerts", params={"limit": 200})
        assert page.status_code == 200, page.text
        return len(page.json()["items"])


def _up(
    env: dict[str, str], cwd: Path, log: Path, prefix: str, port: int
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "eldercare", "up", "--elders", "30", "--speed", "30"]
    cmd += ["--rate-scale", "400", "--every", "2", "--prefix", prefix]
    cmd += ["--dashboard-port", str(port)]
    with log.open("w") as out:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stderr=out, stdout=out)


def _stop(proc: subprocess.Popen[bytes], sig: int) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(90)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_up_on_a_bare_machine_runs_on_its_own_database_and_stops_clean(
    mqtt_url: str, topic_prefix: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # As root the server runs as `nobody`, which must reach its folder (pytest's is 0700).
    data_dir = Path(tempfile.mkdtemp(prefix="eldercare-up-")) / "var"
    data_dir.parent.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(data_dir.parent, ignore_errors=True))
    env = _bare_env(mqtt_url, data_dir)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "up1.log"
    proc = _up(env, tmp_path, log, topic_prefix, port)
    try:
        _wait_for(log, r"database embedded", proc, 120)
        printed = _wait_for(log, r"dispatcher console (http://\S+)/ - demo logins", proc, 120)
        assert printed == base
        deadline = time.monotonic() + 240
        while (seen := _alerts_seen_by_console(base)) == 0:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(2)
        code = _stop(proc, signal.SIGINT)  # Ctrl-C
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code in (0, 130), log.read_text()[-4000:]
    assert _servers_on(data_dir) == [], "a server outlived eldercare up"
    assert (data_dir / "postgres" / "PG_VERSION").exists()

    # Second run: SIGTERM (docker compose stop, systemd) and the same data.
    log2 = tmp_path / "up2.log"
    proc = _up(env, tmp_path, log2, topic_prefix, port)
    try:
        # The same port again, although the first run's connections may be in TIME_WAIT.
        assert _wait_for(log2, r"dispatcher console (http://\S+)/", proc, 120) == base
        again = _alerts_seen_by_console(base)
        code = _stop(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log2.read_text()
    assert "reuses" in text and "creating the embedded" not in text, text[-4000:]
    assert again >= seen > 0
    assert code in (0, 130), text[-4000:]
    assert _servers_on(data_dir) == []


def test_embedded_db_refused_cleanly_when_data_dir_is_unusable(
    mqtt_url: str, tmp_path: Path
) -> None:
    # A file where the data folder should be: the server cannot start, up says so and exits 2.
    (tmp_path / "var").write_text("not a folder")
    env = _bare_env(mqtt_url, tmp_path / "var")
    done = subprocess.run(
        [sys.executable, "-m", "eldercare", "up", "--embedded-db", "--elders", "3"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "devices online" not in done.stderr


def test_redacted_hides_the_password_only() -> None:
    assert _redacted("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db"
    assert (
        _redacted("postgresql://postgres@127.0.0.1:5/db") == "postgresql://postgres@127.0.0.1:5/db"
    )


@pytest.mark.slow
def test_interrupt_stops_up_even_when_started_with_sigint_ignored(
    mqtt_url: str, schema_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    # A shell's background job starts with SIGINT ignored; `kill -INT` must still stop it.
    env = {**os.environ, "MQTT_URL": mqtt_url, "DATABASE_URL": schema_url}
    cmd = [sys.executable, "-m", "eldercare", "up", "--elders", "3", "--prefix", topic_prefix]
    cmd += ["--dashboard-port", "0", "--every", "1"]
    log = tmp_path / "up.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stderr=out,
            stdout=out,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    try:
        _wait_for(log, r"devices online", proc, 120)
        code = _stop(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code in (0, 130), log.read_text()[-3000:]
