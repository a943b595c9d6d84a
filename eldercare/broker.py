"""Local MQTT brokers for tests, benchmarks and the demo: Mosquitto with the shipped config,
and the MQTT 5 probe that `eldercare up` requires of any broker."""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from gateway import acl
from gateway.accounts import issue_account, sync_files, write_atomically
from gateway.acl import AccountKind
from gateway.mqtt import DEFAULT_MQTT_URL, BrokerAddress, parse_mqtt_url
from gateway.settings import MqttAuthSettings
from ingest.pg import connect

logger = logging.getLogger(__name__)

_REPLACED = r"(?m)^\s*(listener|persistence_location|pid_file|log_dest|user)\b.*\n?"


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


class BrokerUnavailable(RuntimeError):
    """No MQTT 5 broker to run against; the message says why and how to get one."""


_HOW = (
    "every service speaks MQTT 5: install Mosquitto >= 2 (apt-get install mosquitto) so one "
    "can be started here, or set MQTT_URL to an MQTT 5 broker"
)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt5_connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    """An MQTT 5 CONNECT (§3.1): clean start, 10 s keep alive, no properties."""
    flags = 0x02 | (0x80 if username else 0) | (0x40 if password else 0)
    variable = _utf8("MQTT") + bytes([5, flags]) + struct.pack("!H", 10) + _varint(0)
    payload = _utf8(client_id)
    if username:
        payload += _utf8(username)
    if password:
        payload += _utf8(password)
    body = variable + payload
    return bytes([0x10]) + _varint(len(body)) + body


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _read_packet(sock: socket.socket) -> tuple[int, bytes] | None:
    head = _read_exact(sock, 1)
    if not head:
        return None
    length, shift = 0, 0
    for _ in range(4):
        byte = _read_exact(sock, 1)
        if not byte:
            return None
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    return head[0], _read_exact(sock, length)


def _login(addr: BrokerAddress) -> tuple[str | None, str | None]:
    """The probe logs in as the services will: the URL's account, else MQTT_USERNAME, else
    ingest's file in MQTT_CREDENTIALS_DIR."""
    if addr.username:
        return addr.username, addr.password.get_secret_value() if addr.password else None
    auth = MqttAuthSettings()
    if auth.username:
        secret = auth.secret()
        return auth.username, secret.get_secret_value() if secret else None
    creds_dir = os.environ.get("MQTT_CREDENTIALS_DIR")
    if creds_dir:  # one account per service (logins_from_dir): probe as ingest
        cred = json.loads(Path(creds_dir, "ingest.json").read_text(encoding="utf-8"))
        return str(cred["username"]), str(cred["password"])
    return None, None


def _secured(sock: socket.socket, addr: BrokerAddress) -> socket.socket:
    """`sock` wrapped in TLS for an `mqtts://` URL (the CA from MQTT_CA_FILE), else as is."""
    if not addr.tls:
        return sock
    ca_file = MqttAuthSettings().ca_file
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    return context.wrap_socket(sock, server_hostname=addr.host)


def mqtt5_refusal(url: str, timeout_s: float = 3.0) -> str | None:
    """Why the broker at `url` cannot serve the platform, or None when it accepts MQTT 5.

    Sends an MQTT 5 CONNECT and reads the CONNACK (§3.2): an MQTT 5 broker answers with a
    reason code and a properties section; a 3.1.1-only broker answers "unacceptable protocol
    version" in the 3.1.1 format (§3.2.2.3 of 3.1.1) or closes the connection.
    """
    try:
        addr = parse_mqtt_url(url)
    except ValueError as exc:
        return str(exc)
    client_id = f"eldercare-probe-{uuid.uuid4().hex[:8]}"
    try:
        raw = socket.create_connection((addr.host, addr.port), timeout=timeout_s)
        with _secured(raw, addr) as sock:
            username, password = _login(addr)
            sock.sendall(mqtt5_connect_packet(client_id, username, password))
            packet = _read_packet(sock)
            if packet is not None and packet[0] >> 4 == 2 and len(packet[1]) >= 3:
                with contextlib.suppress(OSError):
                    sock.sendall(b"\xe0\x00")  # DISCONNECT, normal (§3.14)
    except (OSError, TimeoutError) as exc:
        return f"{addr.url} does not answer an MQTT 5 CONNECT: {exc}"
    if packet is None:
        return f"{addr.url} closed the connection on an MQTT 5 CONNECT (no MQTT 5)"
    kind, body = packet
    if kind >> 4 != 2 or len(body) < 2:
        return f"{addr.url} is not an MQTT broker (answered packet type {kind >> 4})"
    if len(body) < 3:
        return f"{addr.url} speaks MQTT 3.1.1 only (CONNACK return code {body[1]})"
    if body[1] != 0:
        return f"{addr.url} refused an MQTT 5 connection (reason code 0x{body[1]:02x})"
    return None


def ensure_broker(local_url: str = DEFAULT_MQTT_URL, *, allow_mosquitto: bool = True) -> str:
    """An MQTT 5 broker URL to use: $MQTT_URL if set; else `local_url` if it accepts MQTT 5;
    else a Mosquitto with the shipped configuration on a free port (if installed and allowed),
    stopped when the process exits.

    Raises:
        BrokerUnavailable: $MQTT_URL does not accept MQTT 5, or nothing here can; the message
            says why and how to get a broker.
    """
    url = os.environ.get("MQTT_URL")
    if url:
        refusal = mqtt5_refusal(url)
        if refusal is not None:
            raise BrokerUnavailable(f"MQTT_URL: {refusal}; {_HOW}")
        return url
    local = mqtt5_refusal(local_url)
    if local is None:
        return local_url
    if not allow_mosquitto or shutil.which("mosquitto") is None:
        raise BrokerUnavailable(
            f"no MQTT 5 broker: {local}, and mosquitto is not installed; {_HOW}"
        )
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="eldercare-mosquitto-"))
    proc = start_mosquitto(port, data_dir)
    atexit.register(stop, proc)
    started = f"mqtt://127.0.0.1:{port}"
    refusal = mqtt5_refusal(started)
    if refusal is not None:
        stop(proc)
        raise BrokerUnavailable(f"the mosquitto started here: {refusal}; {_HOW}")
    logger.info("started mosquitto on port %d (data in %s)", port, data_dir)
    return started


@dataclass(frozen=True, slots=True)
class SecuredBroker:
    """A Mosquitto started here with auth on: its address and one login URL per service.

    Attributes:
        url: the broker address without credentials (safe to print).
        logins: service name -> `mqtt://svc_<name>:<secret>@host:port`, never printed.
        conf_dir: the generated configuration (`mosquitto.conf`, `passwd`, `acl`).
        proc: the broker process.
    """

    url: str
    logins: dict[str, str]
    conf_dir: Path
    proc: subprocess.Popen[bytes]


SERVICES_OF_UP = ("ingest", "alerting", "simulator", "dashboard")


def start_secured_broker(database_url: str, prefix: str = "") -> SecuredBroker:
    """Start Mosquitto with the configuration `eldercare gateway broker-config` writes.

    Issues fresh secrets for the services `up` runs (only their hashes reach the registry),
    renders the password and ACL files from the registry in `database_url`, and stops the
    broker when the process exits.

    Raises:
        RuntimeError: when mosquitto does not start.
    """
    port = free_port()
    conf_dir = Path(tempfile.mkdtemp(prefix="eldercare-mosquitto-auth-"))
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    conf = acl.render_conf(conf_dir, port=port, run_as="root" if root else None)
    write_atomically(conf_dir / "mosquitto.conf", conf, 0o600)
    logins = {}
    with connect(database_url, autocommit=True) as conn:
        for name in SERVICES_OF_UP:
            cred = issue_account(conn, AccountKind.SERVICE, name)
            secret = cred.password.get_secret_value()
            logins[name] = f"mqtt://{cred.username}:{secret}@127.0.0.1:{port}"
        sync_files(conn, conf_dir, prefix)
    log = (conf_dir / "mosquitto.log").open("ab")
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf_dir / "mosquitto.conf")], stdout=log, stderr=log
    )
    log.close()
    atexit.register(stop, proc)
    deadline = time.monotonic() + 10.0
    url = f"mqtt://127.0.0.1:{port}"
    while not broker_reachable(url, 0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"mosquitto did not start on port {port}; see {conf_dir}")
        time.sleep(0.05)
    logger.info("started mosquitto with auth on port %d (configuration in %s)", port, conf_dir)
    return SecuredBroker(url, logins, conf_dir, proc)


def keep_in_sync(
    database_url: str, broker: SecuredBroker, prefix: str, stop_event: threading.Event
) -> None:
    """Re-render the broker's files every 2 s until `stop_event`; SIGHUP it on a change.

    A device issued or revoked with `eldercare gateway creds` while `up` runs reaches the
    broker within seconds, without dropping other clients.
    """
    while not stop_event.wait(2.0):
        try:
            with connect(database_url, autocommit=True) as conn:
                sync_files(conn, broker.conf_dir, prefix)
        except Exception:
            logger.exception("broker access files not refreshed")


def logins_from_dir(broker_url: str, creds_dir: Path, names: tuple[str, ...]) -> dict[str, str]:
    """Service name -> login URL, from `creds_dir/<name>.json` files (`gateway creds --out`).

    A deployment whose broker has auth on hands each service its own account this way: the
    files are written once by `eldercare gateway creds issue NAME --service --out`, readable
    only by the platform, so no secret is on a command line or in the compose file.

    Raises:
        FileNotFoundError: when a service's file is missing.
    """
    addr = parse_mqtt_url(broker_url)
    out = {}
    for name in names:
        cred = json.loads((creds_dir / f"{name}.json").read_text(encoding="utf-8"))
        user, secret = quote(cred["username"], safe=""), quote(cred["password"], safe="")
        scheme = "mqtts" if addr.tls else "mqtt"
        out[name] = f"{scheme}://{user}:{secret}@{addr.host}:{addr.port}"
    return out
