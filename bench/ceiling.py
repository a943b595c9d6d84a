"""The raw broker ceiling with C clients, measured in the same run as a bench's own path.

Two C publishers:

- `replay_pub` (bench/replay_pub.c, libmosquitto, 4 connections, a device's messages always
  on the same one): publishes a whole stream at once (`publish_stream`) or a recording at a
  multiple of real time (`replay`). Benches feed their own path with it, so the publisher is
  never the limit: it keeps per-device topics (one topic per device, as devices publish) at
  40,000-55,000 msg/s here, where one `mosquitto_pub` process per device topic delivers
  under 4,000 msg/s in all (process start-up and its final wait per topic, measured on
  200 topics of 100 messages).
- `mosquitto_pub -l -q 1`, one process per topic (`c_publish`), for `raw_ceiling`'s few topics.

`stream_ceiling` is the ceiling a path's ratio refers to: the same stream, on the same topics,
from `replay_pub` through a Mosquitto started with the shipped config to one C subscriber
(`mosquitto_sub -q 1 -C N`) that only counts. Neither end is Python, so the figure is what
the broker and the machine allow, and a bench's ratio to it says how much of that our path
keeps.

`StreamPublisher.paho_ceiling` is the Python client's own ceiling in the same run: the same
stream to a paho-mqtt (MQTT 5, QoS 1) subscriber whose callback only counts. Every service
here receives through paho, so no service process can take more than that.
`awscrt_ceiling` measures the same with awscrt's C MQTT 5 client when it is installed (not a
platform dependency).
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

Stream = list[tuple[str, bytes]]
HERE = Path(__file__).resolve().parent


def by_topic(stream: Stream) -> dict[str, bytes]:
    """Payload lines per topic, in stream order (`mosquitto_pub -l` sends one per line)."""
    lines: dict[str, list[bytes]] = defaultdict(list)
    for topic, payload in stream:
        if b"\n" in payload:
            raise ValueError(f"payload on {topic} has a newline: mosquitto_pub -l cannot send it")
        lines[topic].append(payload)
    return {t: b"\n".join(p) + b"\n" for t, p in lines.items()}


def c_publish(port: int, stream: Stream, parallel: int = 8) -> tuple[float, float]:
    """Publish with `mosquitto_pub -l -q 1`, `parallel` processes at a time.

    Returns:
        (perf_counter at the start, perf_counter when every publisher exited).
    """
    work = by_topic(stream)

    def one(item: tuple[str, bytes]) -> None:
        topic, lines = item
        cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-l"]
        subprocess.run(cmd, input=lines, check=True, timeout=600)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(one, work.items()))
    return started, time.perf_counter()


def raw_ceiling(port: int, stream: Stream, parallel: int = 8) -> float:
    """Messages/s from C publishers through the broker to a C subscriber (QoS 1 both ways).

    The same payloads, spread over `parallel` topics (one long-lived publisher each), so
    that process start-up does not count against the broker.
    """
    tag = uuid.uuid4().hex[:6]
    spread = [(f"ceiling-{tag}/{i % parallel}", p) for i, (_, p) in enumerate(stream)]
    cmd = [
        "mosquitto_sub",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-q",
        "1",
        "-i",
        f"ceiling-{tag}",
        "-C",
        str(len(stream)),
        "-t",
        f"ceiling-{tag}/#",
    ]
    sub = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # subscribed before the first publish
        started, _ = c_publish(port, spread, parallel)
        sub.wait(timeout=600)
        return len(stream) / (time.perf_counter() - started)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()


def build_replayer(out_dir: Path) -> Path:
    """Compile bench/replay_pub.c against the libmosquitto that mosquitto-clients installs."""
    exe = out_dir / "replay_pub"
    cmd = ["cc", "-O2", "-o", str(exe), str(HERE / "replay_pub.c"), "-l:libmosquitto.so.1"]
    subprocess.run([*cmd, "-lpthread"], check=True)
    return exe


@dataclass
class Replay:
    """A running replay_pub; `start_ms` is the wall clock of offset 0."""

    proc: subprocess.Popen[bytes]
    start_ms: int
    done: dict[str, float] = field(default_factory=dict)

    def wait(self, timeout_s: float) -> dict[str, float]:
        out, _ = self.proc.communicate(timeout=timeout_s)
        for line in out.decode().splitlines():
            if line.startswith("done "):
                words = line.split()[1:]
                self.done = {k: float(v) for k, v in zip(words[::2], words[1::2], strict=True)}
        return self.done


def replay(exe: Path, port: int, recording: Path, prefix: str, speed: float, tag: str) -> Replay:
    """Start replay_pub on `recording`; returns once its connections are up and its clock runs."""
    cmd = [str(exe), "-p", str(port), "-P", prefix, "-s", repr(speed), "-i", tag, "-w", "120"]
    with open(recording, "rb") as stdin:
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    first = proc.stdout.readline().decode()
    if not first.startswith("start_ms "):
        raise RuntimeError(f"replay_pub did not start: {first!r}")
    return Replay(proc, int(first.split()[1]))


def replay_ceiling(exe: Path, port: int, recording: Path, n: int) -> float:
    """Messages/s of the recording from replay_pub, unpaced, to a C subscriber that counts."""
    tag = f"ceil-{uuid.uuid4().hex[:6]}"
    sub = subprocess.Popen(
        ["mosquitto_sub", "-p", str(port), "-q", "1", "-i", tag, "-C", str(n), "-t", f"{tag}/#"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        rep = replay(exe, port, recording, f"{tag}/", 1e9, tag)
        sub.wait(timeout=600)
        elapsed = time.time() - rep.start_ms / 1000
        rep.wait(60)
        return n / elapsed
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()


def write_stream(path: Path, stream: Stream) -> Path:
    """`stream` as a recording for `replay_pub`: every line at offset 0, QoS 1, not retained."""
    with open(path, "wb") as out:
        for topic, payload in stream:
            if b"\n" in payload or b"\t" in payload or "\t" in topic:
                raise ValueError(f"payload on {topic} has a TAB or newline")
            out.write(b"0\t1\t0\t" + topic.encode() + b"\t" + payload + b"\n")
    return path


class StreamPublisher:
    """Publishes whole streams with `replay_pub`, unpaced (built once, in a temporary folder)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="bench-pub-"))
        self.exe = build_replayer(self.dir)
        self._running: list[Replay] = []

    def publish(self, stream: Stream, prefix: str = "") -> float:
        """Start publishing `stream` (topics get `prefix` in front) and return at once.

        Returns:
            `time.perf_counter()` at the moment the publisher's clock started (its connections
            up), so that `n / (perf_counter() - start)` is a rate from the first publish.

        Raises:
            RuntimeError: when replay_pub does not start.
        """
        rec = write_stream(self.dir / f"{uuid.uuid4().hex[:8]}.tsv", stream)
        rep = replay(self.exe, self.port, rec, prefix, 1e9, f"sp-{uuid.uuid4().hex[:6]}")
        self._running.append(rep)
        return time.perf_counter() - (time.time() - rep.start_ms / 1000)

    def pids(self) -> list[int]:
        """Process ids of the publishers started and not yet waited for, oldest first."""
        return [rep.proc.pid for rep in self._running]

    def wait(self, timeout_s: float = 120.0) -> None:
        """Wait until every stream published so far is acknowledged (RuntimeError if not)."""
        while self._running:
            rep = self._running.pop()
            done = rep.wait(timeout_s)
            if rep.proc.returncode != 0 or done.get("acked") != done.get("sent"):
                raise RuntimeError(f"replay_pub lost messages: {done}")

    def ceiling(self, stream: Stream) -> float:
        """Msg/s of `stream` (its own topics, under a fresh prefix) to one C subscriber."""
        tag = f"ceil-{uuid.uuid4().hex[:6]}"
        rec = write_stream(self.dir / f"{tag}.tsv", stream)
        return replay_ceiling(self.exe, self.port, rec, len(stream))

    def paho_ceiling(self, stream: Stream) -> tuple[float, float]:
        """`stream` to a paho-mqtt subscriber that only counts (MQTT 5, QoS 1, its network
        thread as the services run it).

        Returns:
            (messages/s, CPU seconds of this process per message).
        """
        tag = f"paho-{uuid.uuid4().hex[:6]}"
        n = len(stream)
        got = [0]
        done = threading.Event()

        def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            got[0] += 1
            if got[0] == n:
                done.set()

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=tag, protocol=mqtt.MQTTv5)
        client.on_message = on_message
        client.connect("127.0.0.1", self.port)
        client.subscribe(f"{tag}/#", options=SubscribeOptions(qos=1))
        client.loop_start()
        try:
            return self._timed(stream, tag, done, lambda: f"paho received {got[0]} of {n}")
        finally:
            client.disconnect()
            client.loop_stop()

    def awscrt_ceiling(self, stream: Stream) -> tuple[float, float] | None:
        """The same as `paho_ceiling` with awscrt's MQTT 5 client (C, with Python callbacks),
        when `awscrt` is installed (`pip install awscrt`; not a dependency of the platform).

        Returns:
            (messages/s, CPU seconds of this process per message), or None without awscrt.
        """
        try:
            from awscrt import mqtt5  # type: ignore[import-not-found,import-untyped,unused-ignore]
        except ImportError:
            return None
        tag = f"crt-{uuid.uuid4().hex[:6]}"
        n = len(stream)
        got = [0]
        done = threading.Event()
        connected = threading.Event()

        def on_publish(data: object) -> None:
            got[0] += 1
            if got[0] == n:
                done.set()

        client = mqtt5.Client(
            mqtt5.ClientOptions(
                host_name="127.0.0.1",
                port=self.port,
                connect_options=mqtt5.ConnectPacket(client_id=tag),
                on_publish_callback_fn=on_publish,
                on_lifecycle_event_connection_success_fn=lambda _: connected.set(),
            )
        )
        client.start()
        try:
            if not connected.wait(10):
                raise RuntimeError("awscrt did not connect")
            subscription = mqtt5.Subscription(topic_filter=f"{tag}/#", qos=mqtt5.QoS.AT_LEAST_ONCE)
            client.subscribe(mqtt5.SubscribePacket(subscriptions=[subscription])).result(10)
            return self._timed(stream, tag, done, lambda: f"awscrt received {got[0]} of {n}")
        finally:
            client.stop()

    def _timed(
        self, stream: Stream, tag: str, done: threading.Event, missing: Callable[[], str]
    ) -> tuple[float, float]:
        """Publish `stream` under `tag/` to a subscriber that sets `done` on the last message;
        (messages/s from the first publish, CPU seconds of this process per message)."""
        time.sleep(0.5)  # subscribed before the first publish
        cpu0 = time.process_time()
        started = self.publish(stream, f"{tag}/")
        if not done.wait(600):
            raise RuntimeError(missing())
        rate = len(stream) / (time.perf_counter() - started)
        cpu = (time.process_time() - cpu0) / len(stream)
        self.wait()
        return rate, cpu
