"""The silence check looks only at due deadlines, yet flags exactly what a scan of every device
would: the same devices, at the same tick, from the same last-heard time."""

from __future__ import annotations

import random

from alerting.detectors import HealthDetector
from alerting.model import Trigger
from gateway import AlertKind, DeviceType, Event, Status
from gateway.contract import OFFLINE_HEARTBEATS

T0 = 1_764_316_800_000


class _Scan:
    """The reference: every device's silence compared with its limit on every tick."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.heartbeat: dict[str, int] = {}
        self.offline: set[str] = set()

    def tick(self, now_ms: int) -> set[tuple[str, int]]:
        out = set()
        for dev, seen in self.seen.items():
            limit = int(OFFLINE_HEARTBEATS * self.heartbeat.get(dev, 300) * 1000)
            if dev not in self.offline and now_ms - seen >= limit:
                self.offline.add(dev)
                out.add((dev, seen))
        return out


def test_deadlines_flag_what_a_full_scan_flags() -> None:
    rng = random.Random(11)
    devices = [f"hd-{i:03d}" for i in range(120)]
    health = HealthDetector({}, {})
    ref = _Scan()
    now = T0
    for dev in devices:
        hb = rng.choice([30, 60, 300])
        health.watch(dev, DeviceType.BAND, hb, now)
        ref.seen[dev], ref.heartbeat[dev] = now, hb
    flagged = 0
    for _ in range(3_000):
        now += rng.randint(0, 20_000)
        dev = rng.choice(devices)
        roll = rng.random()
        if roll < 0.55:
            # Most devices talk now and then; some fall silent for long stretches.
            if not dev.endswith(("3", "7")) or rng.random() < 0.05:
                health.on_message(
                    Event(device_id=dev, type=DeviceType.BAND, seq=0, ts=now, event="worn"), now
                )
                ref.seen[dev] = max(ref.seen.get(dev, 0), now)
                ref.offline.discard(dev)
        elif roll < 0.62:
            # A new declared heartbeat, shorter or longer, with the status that declares it.
            hb = rng.choice([30, 60, 120, 300])
            health.on_message(
                Status(device_id=dev, type=DeviceType.BAND, online=True, ts=now, heartbeat_s=hb),
                now,
            )
            ref.seen[dev], ref.heartbeat[dev] = max(ref.seen.get(dev, 0), now), hb
            ref.offline.discard(dev)
        elif roll < 0.65:
            hb = rng.choice([30, 600])
            health.note_heartbeat(dev, hb)
            ref.heartbeat[dev] = hb
        elif roll < 0.66:
            health.unwatch(dev)
            ref.seen.pop(dev, None)
            ref.heartbeat.pop(dev, None)
            ref.offline.discard(dev)
        elif roll < 0.67:
            health.watch(dev, DeviceType.BAND, 60, now)
            ref.seen[dev] = max(ref.seen.get(dev, 0), now)
            ref.heartbeat[dev] = 60
        got = {
            (f.device_id, f.event_ts)
            for f in health.tick(now)
            if isinstance(f, Trigger) and f.kind is AlertKind.DEVICE_OFFLINE
        }
        want = ref.tick(now)
        assert got == want, (now - T0, got ^ want)
        flagged += len(got)
        assert all(health.is_offline(d) == (d in ref.offline) for d in devices)
    assert flagged > 50  # the schedule really does exercise silence, recovery and re-flagging
