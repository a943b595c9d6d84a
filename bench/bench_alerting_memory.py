"""Alerting's memory per registered device over a simulated day, without broker or database.

The simulator's engine (`firmware_sim.engine`) drives a district of `--elders` for `--hours`
simulated hours and every publish goes, as the alerting service handles it, through
`gateway.codec.decode` into `alerting.engine.Engine` (ticks every 0.5 s, the anomaly model's
batch every 500 messages). At the start and every `--every` simulated hours it prints the
Python allocations still held by the platform's code (tracemalloc, which sees numpy's
buffers: allocations made in `alerting/` and `gateway/`, so the registry, every detector's
state and any decoded message a detector keeps), per registered device, with the number of
cane windows the fall detector holds and the bytes per device without those windows (what
its window code allocated). The issue's target is 4 KiB per registered device plus what
buffered cane windows need.

    python bench/bench_alerting_memory.py [--elders 300] [--hours 24] [--every 6] [--at 06:00]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_district import recording_start

from alerting.engine import Engine
from alerting.fall_model import load_fall_model
from firmware_sim.district import generate_fleet
from firmware_sim.engine import Engine as Simulator
from gateway.codec import PayloadError, decode

TICK_MS = 500
DRAIN = 500
STEP_MS = 10_000
_WINDOW_FILES = (str(Path("alerting") / "fall_features.py"), str(Path("detectors") / "fall.py"))
_PLATFORM = [
    tracemalloc.Filter(True, f"*{Path('alerting') / '*'}"),
    tracemalloc.Filter(True, f"*{Path('gateway') / '*'}"),
]


def held_bytes() -> tuple[int, int]:
    """Bytes still allocated by the platform's alerting and gateway code: all, and those of
    the fall detector's buffered cane windows (allocated in its window code)."""
    stats = tracemalloc.take_snapshot().filter_traces(_PLATFORM).statistics("filename")
    windows = sum(stat.size for stat in stats if stat.traceback[0].filename.endswith(_WINDOW_FILES))
    return sum(stat.size for stat in stats), windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elders", type=int, default=300)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--every", type=float, default=6.0, help="simulated hours between reports")
    parser.add_argument("--at", default="06:00", help="Beijing time of the start")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    fleet = generate_fleet(args.elders, args.seed)
    devices = len(fleet.devices)
    duration_ms = int(args.hours * 3_600_000)
    start_ms = recording_start(args.at, duration_ms / 1000)
    model = load_fall_model()
    tracemalloc.start()
    engine = Engine(fleet, model.classifier, start_ms, fall_threshold=model.threshold)
    engine.anomaly.defer = True
    simulator = Simulator(fleet, seed=args.seed, start_ms=start_ms)
    print(f"district: {args.elders} elders, {devices} devices, {args.hours:g} simulated hours")
    header = ("simulated h", "messages", "held bytes", "per device", "cane windows", "without")
    widths = (11, 10, 12, 11, 13, 8)
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))

    def report(hours: float, messages: int) -> None:
        held, in_windows = held_bytes()
        windows = sum(len(c.windows) for c in engine.fall._canes.values())
        cells = (
            f"{hours:.1f}",
            f"{messages:,}",
            f"{held:,}",
            f"{held / devices:,.0f}",
            f"{windows:,}",
            f"{(held - in_windows) / devices:,.0f}",
        )
        print(" ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))

    report(0.0, 0)
    messages = 0
    next_tick = start_ms + TICK_MS
    next_report = start_ms + int(args.every * 3_600_000)
    t = start_ms
    started = time.monotonic()
    while t < start_ms + duration_ms:
        t = min(t + STEP_MS, start_ms + duration_ms)
        for action in simulator.advance(t):
            wire = action.wire
            if wire is None:
                continue
            now = action.at_ms
            while now >= next_tick:
                engine.tick(next_tick)
                next_tick += TICK_MS
            try:
                message = decode(wire.topic, wire.payload, now_ms=now, registry=engine.registry)
            except PayloadError:
                continue
            queued = engine.anomaly.pending()
            engine.on_message(message, now, retained=wire.retain)
            if engine.anomaly.pending() > queued:
                engine.anomaly.stamp(message.ts, message.seq)
            messages += 1
            if messages % DRAIN == 0:
                engine.anomaly.flush()
        simulator.take_incidents()
        if t >= next_report:
            engine.anomaly.flush()
            report((t - start_ms) / 3_600_000, messages)
            next_report += int(args.every * 3_600_000)
    tracemalloc.stop()
    print(f"wall {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
