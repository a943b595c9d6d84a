"""Local MQTT brokers for tests, benchmarks and the demo: Mosquitto with the shipped config."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.mqtt import DEFAULT_MQTT_URL, parse_mqtt_url

logger = logging.getLogger(__name__)

_REPLACED = r"(?m)^\s*(listener|persistence_location|pid_file|log_dest|user)\b.*\n?"
_amqtt_threads: list[threading.Thread] = []


def shipped_conf() -> str:
    """The project's Mosquitto configuration (gateway/mosquitto.conf)."""
    return resources.files("gateway").joinpath("mosquitto.conf").read_text(encoding="utf-8")


def render_conf(port: int, data_dir: Path, conf: str | None = None) -> str:
    """The shipped (or given) config, listening on 127.0.0.1:`port`, persisting in `data_dir`."""
    text = conf if conf is not None else shipped_conf()
    text = re.sub(_REPLACED, "", text)
    # Started as root, mosquitto drops to user `mosquitto`, which cannot write a private data dir.
    user = "user root\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    return (
        user + f"listener {port} 127.0.0.1\n"
        f"persistence_location {data_dir.resolve()}/\n"
        "log_dest stderr\n" + text
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_reachable(url: str, timeout_s: float = 1.0) -> bool:
    """Whether something accepts TCP connections at the broker URL."""
    addr = parse_mqtt_url(url)
    try:
        socket.create_connection((addr.host, addr.port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def start_mosquitto(
    port: int, data_dir: Path, conf: str | None = None, *, wait_s: float = 10.0
) -> subprocess.Popen[bytes]:
    """Start `mosquitto` with the shipped config on `port`, persisting into `data_dir`.

    Args:
        port: the TCP port on 127.0.0.1.
        data_dir: where the config file and the persistence database go (created if needed).
        conf: another config text to start from (defaults to gateway/mosquitto.conf).
        wait_s: how long to wait for the port to accept connections.

    Raises:
        RuntimeError: when mosquitto exits or does not listen in time.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "mosquitto.conf"
    path.write_text(render_conf(port, data_dir, conf), encoding="utf-8")
    log = (data_dir / "mosquitto.log").open("ab")
    proc = subprocess.Popen(["mosquitto", "-c", str(path)], stdout=log, stderr=log)
    log.close()
    deadline = time.monotonic() + wait_s
    url = f"mqtt://127.0.0.1:{port}"
    while not broker_reachable(url, 0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"mosquitto did not start on port {port}; see {data_dir}")
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Stop a broker started by `start_mosquitto` (SIGTERM: it saves its persistence file)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_amqtt(port: int, ready: threading.Event) -> None:
    from amqtt.broker import Broker

    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
        "topic-check": {"enabled": False},
    }

    async def main() -> None:
        broker = Broker(config)
        await broker.start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def start_amqtt(port: int) -> str:
    """Run an in-process amqtt broker in a daemon thread; returns its URL."""
    ready = threading.Event()
    thread = threading.Thread(target=_run_amqtt, args=(port, ready), daemon=True, name="amqtt")
    thread.start()
    _amqtt_threads.append(thread)
    url = f"mqtt://127.0.0.1:{port}"
    if not ready.wait(10) or not broker_reachable(url):
        raise RuntimeError("the in-process amqtt broker did not start")
    return url


def ensure_broker(local_url: str = DEFAULT_MQTT_URL, *, allow_mosquitto: bool = True) -> str:
    """A broker URL to use: $MQTT_URL if set; else `local_url` if it answers; else a Mosquitto
    with the shipped configuration on a free port (if installed and allowed); else an
    in-process amqtt broker. A broker started here is stopped when the process exits.
    """
    url = os.environ.get("MQTT_URL")
    if url:
        return url
    if broker_reachable(local_url):
        return local_url
    port = free_port()
    if allow_mosquitto and shutil.which("mosquitto"):
        data_dir = Path(tempfile.mkdtemp(prefix="eldercare-mosquitto-"))
        proc = start_mosquitto(port, data_dir)
        atexit.register(stop, proc)
        logger.info("started mosquitto on port %d (data in %s)", port, data_dir)
        return f"mqtt://127.0.0.1:{port}"
    logger.info("starting an in-process amqtt broker on %d", port)
    return start_amqtt(port)
