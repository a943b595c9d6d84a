"""Alerting's per-elder and per-device upkeep at district scale, without broker or database.

- Silence check: `HealthDetector.tick` with `--devices` watched devices (Xicheng: ~245,000),
  ms per tick (the service ticks every 0.5 s), against one pass over the same dict, the least
  a scan of every device costs.
- Anomaly model in steady state: `--memory-elders` elders each given a week of band readings
  (4,096 fixes at every cadence, more than the baseline keeps before it halves), bytes per
  elder (Python allocations by tracemalloc, which sees numpy's buffers), what that makes per
  registered device and for `--elders` elders at the simulated district's 2.45 devices per
  elder, and the CPU of judging one live reading.

    python bench/bench_detector_state.py [--devices 245000] [--elders 100000] [--repeat 5]
        [--memory-elders 200]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerting.detectors.anomaly import BASELINE_BYTES, AnomalyDetector
from alerting.detectors.health import HealthDetector
from gateway.contract import DeviceType


def _best_ms(fn: object, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=245_000)
    parser.add_argument("--elders", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory-elders", type=int, default=200)
    args = parser.parse_args()
    health = HealthDetector({}, {})
    now = 1_780_000_000_000
    for i in range(args.devices):
        health.watch(f"dev-{i:06d}", DeviceType.BAND, 60 if i % 2 else 300, now)
    seen = health._last_seen_ms  # the dict a scan would walk

    def scan() -> int:
        late = 0
        for _device, seen_ms in seen.items():
            if now - seen_ms >= 150_000:
                late += 1
        return late

    floor = _best_ms(scan, args.repeat)
    ticks = [now + 500 * (k + 1) for k in range(args.repeat * 4)]
    started = time.perf_counter()
    for t in ticks:
        health.tick(t)
    tick = (time.perf_counter() - started) / len(ticks) * 1000
    print(
        f"silence check, {args.devices:,} devices: HealthDetector.tick {tick:.3f} ms; "
        f"one bare pass over them {floor:.1f} ms (x2 per second at a 0.5 s tick)"
    )
    steady_state_memory(args.memory_elders, args.elders)


# Devices per elder in the simulated district (244,695 devices for 100,000 elders).
DEVICES_PER_ELDER = 2.45


def steady_state_memory(elders: int, district: int) -> None:
    """Print the anomaly model's bytes per elder with full baselines, and its CPU per reading."""
    rng = np.random.default_rng(1)
    t0 = 1_780_000_000_000
    n = 4096
    tracemalloc.start()
    detector = AnomalyDetector()
    base = tracemalloc.get_traced_memory()[0]
    for e in range(elders):
        # Every 30 s; steps spread over all seven cadence bands, heart rate rising with them.
        steps = rng.choice([0, 3, 12, 25, 35, 45, 55], n)
        hr = np.rint(62 + 0.5 * steps + rng.normal(0, 2, n))
        for k in range(n):
            detector.learn(f"el-{e}", t0 + k * 30_000, float(hr[k]), float(steps[k]), 30_000)
    total = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    per_elder = total / elders
    live = [(f"el-{e % elders}", t0 + (n + k) * 30_000, 70.0 + k % 5, 3.0) for k in range(20_000)]
    started = time.process_time()
    for e, (elder, ts, bpm, walked) in enumerate(live):
        detector.on_sample(elder, f"band-{e % elders}", ts, bpm, walked)
    us = (time.process_time() - started) / len(live) * 1e6
    print(
        f"anomaly model, steady state ({elders} elders, {n:,} readings each): "
        f"{per_elder:,.0f} bytes per elder (histograms {BASELINE_BYTES:,}), "
        f"{per_elder / DEVICES_PER_ELDER:,.0f} bytes per registered device at "
        f"{DEVICES_PER_ELDER} devices per elder; {district:,} elders: "
        f"{per_elder * district / 2**20:,.0f} MiB. Judging a live reading: {us:.1f} us of CPU"
    )


if __name__ == "__main__":
    main()
