"""Servers and probes the alert-latency bench breaks and times: a private PostgreSQL cluster,
`eldercare alerting` processes, device presses, and timestamps taken by the C MQTT clients.

Every timestamp is the wall clock (CLOCK_REALTIME) of this machine: `mosquitto_sub -F %U`
prints it when a message arrives, and presses and raw probes carry `time.time_ns()` taken
just before they are handed to the client.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from eldercare.broker import free_port
from eldercare.database import server_bin_dir
from gateway import DeviceType, Event, encode_message
from gateway.mqtt import make_client, parse_mqtt_url

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = server_bin_dir()


class PrivateCluster:
    """A throwaway PostgreSQL cluster on its own port, stopped and started at will."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(PG_BIN / "initdb", "-D", self.dir / "data", "-A", "trust", "-U", "postgres")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: object) -> None:
        subprocess.run([*self.as_user, *map(str, args)], check=True, capture_output=True)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        data, log = self.dir / "data", self.dir / "log"
        self._run(PG_BIN / "pg_ctl", "-D", data, "-l", log, "-w", "-o", opts, "start")

    def stop(self) -> None:
        """A fast shutdown: every client connection is closed, new ones are refused."""
        self._run(PG_BIN / "pg_ctl", "-D", self.dir / "data", "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class AlertingProcess:
    """`eldercare alerting` as operators run it, in its own working directory."""

    def __init__(self, name: str, env: dict[str, str], work: Path) -> None:
        self.name, self.work = name, work
        self.env = {
            **os.environ,
            **env,
            "ALERTING_OUTBOX_PATH": str(work / f"{name}.sqlite3"),
            "PYTHONPATH": str(ROOT),  # this tree, whatever the working directory
        }
        self.log = work / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "eldercare", "alerting"],
                env=self.env,
                cwd=self.work,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Arrivals:
    """`mosquitto_sub` logging the arrival time of every message on `topic_filter`."""

    def __init__(self, port: int, topic_filter: str, path: Path) -> None:
        self.path = path
        self._out = path.open("wb")
        argv = ["mosquitto_sub", "-p", str(port), "-q", "1", "-t", topic_filter, "-F", "%U %p"]
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # subscribed (a local broker answers SUBACK within milliseconds)

    def read(self) -> list[tuple[int, str]]:
        """(arrival ns, payload) of everything received so far."""
        out = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            stamp, _, payload = line.partition(" ")
            sec, _, frac = stamp.partition(".")
            if sec.isdigit() and frac.isdigit():
                out.append((int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9]), payload))
        return out

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._out.close()


def raw_round_trip_ms(port: int, samples: int, gap_s: float, work: Path) -> list[float]:
    """The ceiling: `mosquitto_pub -l` -> broker -> `mosquitto_sub`, each probe carrying its
    send time; latency = arrival - send, in ms (a lost probe is inf)."""
    topic = f"bench-raw/{os.getpid()}"
    arrivals = Arrivals(port, topic, work / "raw.txt")
    pub = subprocess.Popen(
        ["mosquitto_pub", "-p", str(port), "-q", "1", "-t", topic, "-l"], stdin=subprocess.PIPE
    )
    assert pub.stdin is not None
    time.sleep(0.5)
    sent = []
    for _ in range(samples):
        t0 = time.time_ns()
        pub.stdin.write(f"{t0}\n".encode())
        pub.stdin.flush()
        sent.append(t0)
        time.sleep(gap_s)
    time.sleep(1.0)
    pub.stdin.close()
    pub.wait(10)
    arrivals.close()
    got = {int(p): t for t, p in arrivals.read() if p.isdigit()}
    return [(got[t0] - t0) / 1e6 if t0 in got else float("inf") for t0 in sent]


class Presser:
    """Presses SOS buttons over one paho connection; remembers when each was sent."""

    def __init__(self, url: str) -> None:
        address = parse_mqtt_url(url)
        self.client = make_client(address=address)
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        self.sent_ns: dict[str, int] = {}

    def press(self, button: str, seq: int = 1) -> None:
        ts = int(time.time() * 1000)
        topic, payload = encode_message(
            Event(device_id=button, type=DeviceType.BUTTON, seq=seq, ts=ts, event="press")
        )
        self.sent_ns[button] = time.time_ns()
        self.client.publish(topic, payload, qos=1)

    def press_every(self, buttons: list[str], gap_s: float) -> threading.Thread:
        """Press each of `buttons` in turn, `gap_s` apart, in a background thread."""

        def run() -> None:
            for b in buttons:
                self.press(b)
                time.sleep(gap_s)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def first_alerts(arrivals: Arrivals) -> dict[str, tuple[int, set[str]]]:
    """Per device: the first arrival (ns) of an alert message and every alert id seen."""
    out: dict[str, tuple[int, set[str]]] = {}
    for t, payload in arrivals.read():
        try:
            msg = json.loads(payload)
        except ValueError:
            continue
        device = str(msg.get("device_id"))
        first, ids = out.get(device, (t, set()))
        ids.add(str(msg.get("alert_id")))
        out[device] = (min(first, t), ids)
    return out
