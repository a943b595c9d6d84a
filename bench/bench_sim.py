"""Benchmark the simulator: N devices against the local broker, against a bare paho ceiling.

Usage: .venv/bin/python bench/bench_sim.py [--devices 10000] [--seconds 20] [--speed 200]
       [--pooled 0] [--mqtt-url mqtt://127.0.0.1:1883]

Prints the simulator's publish rate and devices online, then the raw ceiling (one bare
paho client publishing payloads of the same sizes and QoS mix in a tight loop) and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from dataclasses import replace

from firmware_sim import Engine, SimStats, Simulation, generate_fleet
from firmware_sim.faults import Wire
from gateway import Fleet
from gateway.mqtt import DEFAULT_MQTT_URL, make_client, parse_mqtt_url

START_MS = 1_764_300_000_000


def fleet_of(n_devices: int, seed: int, tag: str) -> Fleet:
    """A district fleet trimmed to exactly `n_devices` devices, ids tagged for this run.

    Device ids are MQTT client ids: tagging them keeps the run from taking over the
    connections of another simulator on the same broker.
    """
    fleet = generate_fleet(int(n_devices / 2.4) + 10, seed)
    devices = tuple(replace(d, id=f"{d.id}-{tag}") for d in fleet.devices[:n_devices])
    owners = {d.elder_id for d in devices}
    return replace(fleet, devices=devices, elders=tuple(e for e in fleet.elders if e.id in owners))


def sample_wires(fleet: Fleet, prefix: str, count: int) -> list[Wire]:
    """Payloads the fleet really sends (first simulated minutes), for the ceiling loop."""
    engine = Engine(fleet, seed=1, start_ms=START_MS, prefix=prefix)
    wires: list[Wire] = []
    t = START_MS
    while len(wires) < count and t < START_MS + 6 * 3_600_000:
        t += 60_000
        wires += [o.wire for o in engine.advance(t) if o.wire is not None]
    return wires[:count]


def raw_ceiling(url: str, wires: list[Wire], seconds: float) -> float:
    """Messages/s of one bare non-threaded paho client publishing `wires` round-robin."""
    addr = parse_mqtt_url(url)
    client = make_client(f"bench-raw-{uuid.uuid4().hex[:6]}", mqtt5=False, address=addr)
    client.max_inflight_messages_set(1000)
    unacked: set[int] = set()
    client.on_publish = lambda c, u, mid, rc, p: unacked.discard(mid)
    client.connect(addr.host, addr.port)
    while not client.is_connected():
        client.loop(0.05)
    sent, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for w in wires[:500] if sent else wires:
            while len(unacked) >= 1000:
                client.loop(0.01)
            info = client.publish(w.topic, w.payload, qos=w.qos)
            if w.qos:
                unacked.add(info.mid)
            sent += 1
            if sent % 100 == 0:
                client.loop(0)
    client.disconnect()
    return sent / seconds


def main() -> int:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--speed", type=float, default=200.0)
    ap.add_argument("--pooled", type=int, default=0)
    ap.add_argument("--mqtt-url", default=DEFAULT_MQTT_URL)
    args = ap.parse_args()
    tag = uuid.uuid4().hex[:6]
    prefix = f"bench-{tag}/"
    fleet = fleet_of(args.devices, seed=1, tag=tag)
    last: list[SimStats] = []

    def progress(stats: SimStats) -> None:
        print(stats.line(), file=sys.stderr, flush=True)
        last.append(replace(stats))

    sim = Simulation(
        fleet,
        mqtt_url=args.mqtt_url,
        prefix=prefix,
        seed=1,
        speed=args.speed,
        duration_s=args.seconds,
        pooled=args.pooled,
        progress=progress,
        progress_s=2.0,
    )
    t0 = time.monotonic()
    stats = sim.run()
    wall_s = time.monotonic() - t0
    online = max((s.online for s in last), default=0)
    run_s = stats.elapsed_s  # from the simulated clock's start, after all connections are up
    sim_rate = stats.sent / run_s
    sim_span_s = (stats.sim_ms - sim.start_ms) / 1000
    wires = sample_wires(fleet, prefix, 20_000)
    mean_bytes = sum(len(w.payload) for w in wires) / max(len(wires), 1)
    qos1 = sum(w.qos for w in wires) / max(len(wires), 1)
    ceiling = raw_ceiling(args.mqtt_url, wires, min(args.seconds, 10.0))
    mode = f"pooled {args.pooled}" if args.pooled else "one connection per device"
    print(f"devices: {len(fleet.devices)} ({mode}), peak online: {online}")
    print(f"connect + run + disconnect: {wall_s:.1f} s wall")
    print(
        f"simulator: {stats.sent} msgs sent in {run_s:.1f} s = {sim_rate:.0f} msg/s; "
        f"simulated {sim_span_s:.0f} s ({sim_span_s / run_s:.0f}x real time, asked {args.speed:g}x)"
    )
    print(f"payloads: mean {mean_bytes:.0f} B, {qos1:.0%} QoS 1")
    print(f"raw ceiling (bare paho loop, same payloads): {ceiling:.0f} msg/s")
    print(f"ratio simulator/raw: {sim_rate / ceiling:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
