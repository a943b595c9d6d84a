"""Decode cost of the wire codec, per message, for the payloads devices send most.

For each payload (band fix, smoke reading, band SOS event, 100-sample cane window in milli-g as
canes and the simulator send it, and the same window at full float precision) prints the best
of N runs of `gateway.codec.decode` in microseconds per message, beside the raw floor of the
same run: `orjson.loads` of the same bytes alone (the C parse every decode starts with). The
ratio decode / floor is what the codec adds on top of parsing.

Usage: .venv/bin/python bench/bench_codec.py [--loops 2000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import random
import time
import timeit
from collections.abc import Callable
from typing import Any

import orjson

from gateway import (
    BandTelemetry,
    CaneTelemetry,
    DeviceType,
    Event,
    Message,
    SmokeTelemetry,
)
from gateway.codec import decode, encode_message

NOW_MS = int(time.time() * 1000)


def payloads() -> dict[str, tuple[str, bytes]]:
    """The benchmarked messages, by name: `(topic, payload bytes)`."""
    rng = random.Random(1)
    milli = tuple(
        (round(rng.gauss(0, 0.01), 3), round(rng.gauss(0, 0.01), 3), 1.0) for _ in range(100)
    )
    full = tuple((rng.gauss(0, 0.3), rng.gauss(0, 0.3), rng.gauss(1, 0.3)) for _ in range(100))
    common: dict[str, Any] = {"seq": 41, "ts": NOW_MS - 1000, "battery_pct": 80.0}
    msgs: dict[str, Message] = {
        "band": BandTelemetry(
            device_id="band-0001",
            type=DeviceType.BAND,
            **common,
            lat=39.9123,
            lon=116.3456,
            hacc_m=8.0,
            hr_bpm=70,
            steps=3,
            worn=True,
        ),
        "smoke": SmokeTelemetry(
            device_id="smoke-0001", type=DeviceType.SMOKE, **common, smoke_db_m=0.0, temp_c=21.0
        ),
        "event": Event(device_id="band-0001", type=DeviceType.BAND, **common, event="sos"),
        "cane100": CaneTelemetry(
            device_id="cane-0001", type=DeviceType.CANE, **common, rate_hz=50, accel_g=milli
        ),
        "cane100-full": CaneTelemetry(
            device_id="cane-0001", type=DeviceType.CANE, **common, rate_hz=50, accel_g=full
        ),
    }
    return {name: encode_message(msg) for name, msg in msgs.items()}


def best_us(fn: Callable[[], object], loops: int, repeat: int) -> float:
    """Best of `repeat` runs of `loops` calls, in microseconds per call."""
    return min(timeit.repeat(fn, number=loops, repeat=repeat)) / loops * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=2000, help="calls per run")
    parser.add_argument("--repeat", type=int, default=7, help="runs; the best is reported")
    args = parser.parse_args()
    print(f"best of {args.repeat} x {args.loops} calls; us per message")
    print(f"{'payload':<14}{'bytes':>7}{'decode':>10}{'orjson.loads':>14}{'ratio':>8}")
    for name, (topic, payload) in payloads().items():
        decode(topic, payload, now_ms=NOW_MS)  # a payload that does not decode fails here

        def run(topic: str = topic, payload: bytes = payload) -> object:
            return decode(topic, payload, now_ms=NOW_MS)

        def floor(payload: bytes = payload) -> object:
            return orjson.loads(payload)

        ours = best_us(run, args.loops, args.repeat)
        raw = best_us(floor, args.loops, args.repeat)
        print(f"{name:<14}{len(payload):>7}{ours:>10.2f}{raw:>14.2f}{ours / raw:>8.1f}")


if __name__ == "__main__":
    main()
