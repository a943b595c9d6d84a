"""Alerting's per-elder and per-device upkeep at district scale, without broker or database.

- Anomaly model fit: `alerting.detectors.iforest.fit_forest` against scikit-learn's
  `IsolationForest(n_estimators=50).fit` (the reference it replaced) on 200, 1,000 and 3,000
  heart-rate rows, best of `--repeat`, ms per fit; and what a restart costs: one fit per elder
  with a full history, at each fitter's speed.
- Silence check: `HealthDetector.tick` with `--devices` watched devices (Xicheng: ~245,000),
  ms per tick (the service ticks every 0.5 s), against one pass over the same dict, the least
  a scan of every device costs.
- Anomaly model memory in steady state: `--memory-elders` elders each with a full history
  (3,000 fixes, a day of one fix every 30 s) and a fitted forest, bytes per elder (Python
  allocations by tracemalloc, which sees numpy's buffers), and what that makes per registered
  device and for `--elders` elders at the simulated district's 2.45 devices per elder.

    python bench/bench_detector_state.py [--devices 245000] [--elders 100000] [--repeat 5]
        [--memory-elders 50]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerting.detectors.anomaly import DEFAULT_FOREST_BUDGET_MIB, AnomalyDetector
from alerting.detectors.health import HealthDetector
from alerting.detectors.iforest import NODE_BYTES, fit_forest
from gateway.contract import DeviceType


def _rows(rng: np.random.Generator, n: int) -> np.ndarray:
    steps = rng.gamma(1.5, 1.0, n)
    hour = rng.uniform(0, 24, n)
    hr = 62 + 6 * steps + rng.normal(0, 3, n)
    angle = hour / 24 * 2 * np.pi
    return np.column_stack([hr, np.log1p(steps), np.sin(angle), np.cos(angle)])


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
    parser.add_argument("--memory-elders", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    print("anomaly model fit, 50 trees, contamination 0.005 (ms per fit, best of", args.repeat, ")")
    print(f"{'rows':>6} {'scikit-learn':>13} {'fit_forest':>11} {'ratio':>6}")
    full = (0.0, 0.0)
    for n in (200, 1000, 3000):
        x = _rows(rng, n)
        ref = _best_ms(
            lambda x=x: IsolationForest(n_estimators=50, contamination=0.005, random_state=0).fit(
                x
            ),
            args.repeat,
        )
        own = _best_ms(
            lambda x=x: fit_forest(x, trees=50, contamination=0.005, seed=0), args.repeat
        )
        print(f"{n:>6} {ref:>13.1f} {own:>11.1f} {ref / own:>5.1f}x")
        full = (ref, own)
    print(
        f"a restart refitting {args.elders:,} elders with full histories: "
        f"{full[0] * args.elders / 1000 / 60:.0f} CPU-minutes with scikit-learn, "
        f"{full[1] * args.elders / 1000 / 60:.0f} with fit_forest "
        "(spread over time by the fitting budget, FIT_SHARE of the wall clock)"
    )

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
    """Print the anomaly model's bytes per elder once histories are full and forests fitted."""
    rng = np.random.default_rng(1)
    t0 = 1_780_000_000_000
    tracemalloc.start()
    detector = AnomalyDetector()
    base = tracemalloc.get_traced_memory()[0]
    for e in range(elders):
        steps = rng.gamma(1.5, 1.0, 3000)
        hr = np.rint(62 + 6 * steps + rng.normal(0, 3, 3000))
        for k in range(3000):
            detector.learn(f"el-{e}", t0 + k * 30_000, float(hr[k]), float(steps[k]))
    history = tracemalloc.get_traced_memory()[0] - base
    for e in range(elders):  # a live fix each: the forest is fitted (budget permitting)
        detector.on_sample(f"el-{e}", f"band-{e}", t0 + 3000 * 30_000, 70.0, 1.0)
        while detector.waiting():
            time.sleep(0.05)
            detector.fit_waiting()
    total = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(detector.pool) == elders, "every elder has a forest"
    per_elder = total / elders
    forest = detector.pool.live_nodes() * NODE_BYTES / elders
    budget = DEFAULT_FOREST_BUDGET_MIB * 2**20
    bounded = history / elders * district + min(forest * district, budget)
    print(
        f"anomaly model, steady state ({elders} elders, 3,000-fix histories, fitted forests): "
        f"{per_elder / 1024:.0f} KiB per elder (history {history / elders / 1024:.0f} KiB, "
        f"forest {forest / 1024:.0f} KiB, arena {detector.pool.nbytes() / elders / 1024:.0f}"
        f" KiB); {per_elder / DEVICES_PER_ELDER / 1024:.0f} KiB per registered device at "
        f"{DEVICES_PER_ELDER} devices per elder. {district:,} elders: every forest "
        f"{(history / elders + forest) * district / 2**30:.1f} GiB; with the default forest "
        f"budget ({DEFAULT_FOREST_BUDGET_MIB} MiB, {int(budget // forest):,} forests) "
        f"{bounded / 2**30:.1f} GiB"
    )


if __name__ == "__main__":
    main()
