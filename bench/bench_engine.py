"""Alerting's per-message detection cost on a district's recorded traffic, without broker or DB.

Records a simulated district (`firmware_sim.record`, the traffic `bench_district.py` replays)
for `--duration` simulated seconds at Beijing time `--at` (the routines follow the time of
day: 08:47 is the morning peak, with elders out walking), then feeds every message to the
alerting engine as the service does (`gateway.codec.decode`, `Engine.on_message` at the
message's send time on the platform clock, the engine's tick every 0.5 s, the anomaly
model's batch scoring every 500 messages) and prints, per message kind, the CPU time
(`time.process_time`) of decoding and of the engine, in microseconds per message, best of
`--repeat` passes over the same recording (each pass a new engine). This is the main
thread's share of alerting's cost; the MQTT client's receive cost comes on top (printed by
`bench_alerting.py` as "paho-mqtt alone").

It also prints a digest of every action the engine returned (every field, the reason with
its probability too), so a change meant only to make detection faster can be checked to
decide the same: the digest must not change.

    python bench/bench_engine.py [--elders 3000] [--duration 120] [--warmup 300] [--at 08:47]
        [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_district import keep_recording, recording_start

from alerting.engine import Engine, finding_actions
from alerting.fall_model import load_fall_model
from alerting.model import Action
from firmware_sim.district import generate_fleet
from firmware_sim.record import read_recording
from gateway.codec import PayloadError, decode
from gateway.fleet import Fleet

TICK_MS = 500
DRAIN = 500
TICKS = "(engine ticks, per 0.5 s tick)"


def _key(action: Action) -> str:
    """The action as its dataclass repr: every field, reasons (and their probabilities) too."""
    return repr(action)


def replay(
    fleet: Fleet, lines: list[tuple[int, int, bool, str, bytes]], start_ms: int
) -> tuple[dict[str, list[float]], list[str]]:
    """One pass: (kind -> [decode s, engine s, count]), every action's key in order."""
    model = load_fall_model()
    engine = Engine(fleet, model.classifier, start_ms, fall_threshold=model.threshold)
    engine.anomaly.defer = True
    costs: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    ticks = costs[TICKS] = [0.0, 0.0, 0.0]
    actions: list[str] = []
    next_tick = start_ms + TICK_MS
    clock = time.process_time
    for n, (offset, _qos, retain, topic, payload) in enumerate(lines, 1):
        now = start_ms + offset
        while now >= next_tick:
            t0 = clock()
            actions.extend(_key(a) for a in engine.tick(next_tick))
            ticks[1] += clock() - t0
            ticks[2] += 1
            next_tick += TICK_MS
        kind = topic.rsplit("/", 1)[-1]
        t0 = clock()
        try:
            message = decode(topic, payload, now_ms=now, registry=engine.registry)
        except PayloadError:
            continue
        t1 = clock()
        queued = engine.anomaly.pending()
        out = engine.on_message(message, now, retained=retain)
        if engine.anomaly.pending() > queued:
            engine.anomaly.stamp(message.ts, message.seq)
        if n % DRAIN == 0 and engine.anomaly.pending():
            out.extend(finding_actions(engine, list(engine.anomaly.flush())))
        t2 = clock()
        kind = type(message).__name__ + ("" if kind == "telemetry" else f" ({kind})")
        cost = costs[kind]
        cost[0] += t1 - t0
        cost[1] += t2 - t1
        cost[2] += 1
        actions.extend(_key(a) for a in out)
    return dict(costs), actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elders", type=int, default=3000)
    parser.add_argument("--duration", type=float, default=120.0, help="simulated seconds")
    parser.add_argument("--warmup", type=float, default=300.0, help="simulated s not recorded")
    parser.add_argument("--at", default="08:47", help="Beijing time of the recording's start")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", default="", help="reuse recordings there (bench_district --keep)")
    args = parser.parse_args()
    fleet = generate_fleet(args.elders, args.seed)
    start_ms = recording_start(args.at, args.duration)
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as work:
        path, stats, _ = keep_recording(
            Path(args.keep) if args.keep else None,
            Path(work),
            fleet,
            duration_s=args.duration,
            start_ms=start_ms,
            seed=args.seed,
            warmup_s=args.warmup,
        )
        lines = read_recording(path)
    print(
        f"district: {args.elders} elders, {len(fleet.devices)} devices, {stats.messages} "
        f"messages over {args.duration:g} s from {args.at or 'now'} Beijing time"
    )
    best: dict[str, list[float]] = {}
    digests = set()
    for _ in range(args.repeat):
        costs, actions = replay(fleet, lines, start_ms)
        digests.add(hashlib.sha256("\n".join(actions).encode()).hexdigest()[:16])
        for kind, (dec, eng, count) in costs.items():
            if kind not in best or dec + eng < best[kind][0] + best[kind][1]:
                best[kind] = [dec, eng, count]
    tick = best.pop(TICKS)
    total = [sum(v[i] for v in best.values()) for i in range(3)]
    print(f"{'kind':34s} {'messages':>9s} {'decode us':>10s} {'engine us':>10s} {'sum us':>8s}")
    for kind, (dec, eng, count) in sorted(best.items(), key=lambda kv: -kv[1][2]):
        print(
            f"{kind:34s} {int(count):9d} {dec / count * 1e6:10.1f} {eng / count * 1e6:10.1f} "
            f"{(dec + eng) / count * 1e6:8.1f}"
        )
    dec, eng, count = total
    print(
        f"{'all':34s} {int(count):9d} {dec / count * 1e6:10.1f} {eng / count * 1e6:10.1f} "
        f"{(dec + eng) / count * 1e6:8.1f}"
    )
    print(
        f"ticks: {int(tick[2])}, {tick[1] / max(tick[2], 1) * 1e3:.2f} ms each; messages and "
        f"ticks together {count / (dec + eng + tick[1]):.0f} msg/s on one core"
    )
    print(f"actions: {len(actions)}, digest {' '.join(sorted(digests))}")
    if len(digests) > 1:
        print("WARNING: passes over the same recording decided differently")


if __name__ == "__main__":
    main()
