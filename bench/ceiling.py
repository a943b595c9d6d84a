"""The raw broker ceiling with C clients, measured in the same run as a bench's own path.

C publishers (`mosquitto_pub -l -q 1`, one process per topic, several at once) send the same
payloads through a Mosquitto started with the shipped config to one C subscriber
(`mosquitto_sub -q 1 -C N`) that only counts. Neither end is Python, so the figure is what the
broker and the machine allow, and a bench's ratio to it says how much of that our path keeps.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

Stream = list[tuple[str, bytes]]


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
