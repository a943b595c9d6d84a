"""The behaviour every simulated device shares: seq, battery, heartbeats, reboots, death (pure)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from firmware_sim.incidents import Incident
from firmware_sim.routine import DAY_MS, Routine
from firmware_sim.scenario import Injection
from gateway import Device, DeviceType, Event, Message, Status

NEVER = 2**62
LOW_BATTERY_PCT = 15.0
# Battery life per type, days: GPS wristbands 2–7 days (data README); others typical specs.
LIFE_DAYS = {
    DeviceType.BUTTON: (180.0, 400.0),
    DeviceType.SMOKE: (365.0, 1000.0),
    DeviceType.BAND: (2.0, 7.0),
    DeviceType.CANE: (5.0, 14.0),
}
FIRMWARE = {
    DeviceType.BUTTON: "2.1.0",
    DeviceType.SMOKE: "3.0.4",
    DeviceType.BAND: "1.4.2",
    DeviceType.CANE: "1.2.7",
}
REBOOT_PER_DAY = 0.01
# A district's devices were switched on at unrelated moments, so their periodic reports are
# spread over the whole period rather than all due together after the simulation starts.
REPORT_PHASE_MS = {
    DeviceType.BUTTON: 0,
    DeviceType.SMOKE: 60_000,
    DeviceType.BAND: 300_000,
    DeviceType.CANE: 60_000,
}


class ActionKind(StrEnum):
    """What the transport must do for a device."""

    CONNECT = "connect"  # open the device's connection (with its Will)
    PUBLISH = "publish"
    KILL = "kill"  # drop the socket without DISCONNECT: the broker publishes the Will


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a device's output, in time order."""

    kind: ActionKind
    message: Message | None = None
    qos: int = 1


@dataclass(slots=True)
class ModelContext:
    """What a device model needs besides its own generator."""

    routine: Routine
    start_ms: int
    rate_scale: float = 1.0
    incidents: list[Incident] = field(default_factory=list)
    anomaly_per_day: float = 0.0  # arrhythmia episodes per elder-day (firmware_sim.conditions)


def device_key(device_id: str) -> int:
    """A stable integer for seeding a device's generator from its id."""
    return zlib.crc32(device_id.encode())


class DeviceModel:
    """Base device: subclasses add their sensing in `_sense` and their incidents in `_inject`."""

    def __init__(self, device: Device, ctx: ModelContext, rng: np.random.Generator) -> None:
        """Set up a device that boots at a random moment in its first seconds."""
        self.device, self.ctx, self.rng = device, ctx, rng
        self.seq = 0
        lo, hi = LIFE_DAYS[device.type]
        self.drain_per_ms = 100.0 / (rng.uniform(lo, hi) * DAY_MS)
        # A few devices start close to the low-battery level, as in any real fleet.
        near_low = rng.random() < 0.02
        self.battery_pct = float(rng.uniform(15.5, 17) if near_low else rng.uniform(35, 100))
        self.rssi_dbm = float(rng.uniform(-95, -55))
        self.state = "boot"
        self.next_ms = ctx.start_ms + int(rng.uniform(0, 5000))
        self.next_heartbeat_ms = NEVER
        self.next_reboot_ms = self._after(ctx.start_ms, REBOOT_PER_DAY)
        self.last_ms = ctx.start_ms
        self.low_sent = self.battery_pct < LOW_BATTERY_PCT
        self.pending: list[tuple[int, Injection]] = []
        self._n_incidents = 0
        self.sense_from_ms = self.next_ms + int(rng.uniform(0, REPORT_PHASE_MS[device.type]))
        self.first_heartbeat_ms = self.next_ms + int(
            rng.uniform(0.1, 1.0) * device.heartbeat_s * 1000
        )

    # -- helpers for subclasses ---------------------------------------------------------

    def _after(self, now_ms: int, per_day: float) -> int:
        """Next time of a Poisson process with `per_day` events per day (scaled)."""
        rate = per_day * self.ctx.rate_scale
        if rate <= 0:
            return NEVER
        return now_ms + int(self.rng.exponential(DAY_MS / rate))

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq - 1

    def _event(self, now_ms: int, name: str) -> Action:
        return Action(
            ActionKind.PUBLISH,
            Event(
                device_id=self.device.id,
                type=self.device.type,
                seq=self._next_seq(),
                ts=now_ms,
                battery_pct=round(self.battery_pct, 1),
                event=name,
            ),
        )

    def _status(self, now_ms: int) -> Action:
        self.next_heartbeat_ms = now_ms + self.device.heartbeat_s * 1000
        rssi = round(self.rssi_dbm + float(self.rng.normal(0, 2)), 1)
        return Action(
            ActionKind.PUBLISH,
            Status(
                device_id=self.device.id,
                type=self.device.type,
                online=True,
                ts=now_ms,
                heartbeat_s=self.device.heartbeat_s,
                battery_pct=round(self.battery_pct, 1),
                rssi_dbm=rssi,
                fw=FIRMWARE[self.device.type],
            ),
        )

    def will(self) -> Status:
        """The Last Will the device registers (contract §1 "Status")."""
        return Status(device_id=self.device.id, type=self.device.type, online=False)

    def record(self, kind: str, real: bool, start_ms: int, detail: str = "") -> None:
        """Log a ground-truth incident at the elder's position at `start_ms`."""
        self._n_incidents += 1
        lat, lon = self.ctx.routine.position(start_ms)
        self.ctx.incidents.append(
            Incident(
                incident_id=f"inc-{self.device.id}-{self._n_incidents}",
                kind=kind,
                real=real,
                elder_id=self.device.elder_id,
                device_id=self.device.id,
                start_ts=start_ms,
                lat=round(lat, 6),
                lon=round(lon, 6),
                detail=detail,
            )
        )

    # -- the step ----------------------------------------------------------------------------

    def schedule(self, injection: Injection, at_ms: int) -> None:
        """Queue an injected incident for `at_ms` (simulated clock)."""
        self.pending.append((at_ms, injection))
        self.pending.sort(key=lambda p: p[0])
        self.next_ms = min(self.next_ms, max(at_ms, self.last_ms))

    def wake(self, now_ms: int) -> list[Action]:
        """Advance the device to `now_ms` and return what it does then, in order."""
        self._drain(now_ms)
        out: list[Action] = []
        if self.state in ("boot", "down"):
            if self.state == "down":
                self.next_reboot_ms = self._after(now_ms, REBOOT_PER_DAY)
            out += [Action(ActionKind.CONNECT), self._status(now_ms)]
            if self.state == "boot":
                self.next_heartbeat_ms = self.first_heartbeat_ms
            self.state = "on"
        while self.pending and self.pending[0][0] <= now_ms and self.state == "on":
            out += self._apply(self.pending.pop(0)[1], now_ms)
            self.sense_from_ms = min(self.sense_from_ms, now_ms)
        if self.state == "on" and now_ms >= self.next_reboot_ms:
            out += self._reboot(now_ms)
        if self.state == "on":
            out += self._power(now_ms)
        next_sense = NEVER
        if self.state == "on":
            if now_ms < self.sense_from_ms:
                next_sense = self.sense_from_ms
            else:
                sensed, next_sense = self._sense(now_ms)
                out += sensed
            if now_ms >= self.next_heartbeat_ms:
                out.append(self._status(now_ms))
        self.next_ms = self._next_wake(now_ms, next_sense)
        return out

    def _next_wake(self, now_ms: int, next_sense: int) -> int:
        if self.state in ("dead", "silent"):
            return NEVER
        if self.state == "down":
            return self.next_reboot_ms
        nxt = min(next_sense, self.next_heartbeat_ms, self.next_reboot_ms)
        if self.pending:
            nxt = min(nxt, self.pending[0][0])
        return max(nxt, now_ms + 1)

    def _drain(self, now_ms: int) -> None:
        self.battery_pct = max(0.0, self.battery_pct - self.drain_per_ms * (now_ms - self.last_ms))
        self.last_ms = now_ms

    def _power(self, now_ms: int) -> list[Action]:
        if self.battery_pct <= 0.0:
            self.state = "dead"
            self.record("device_offline", True, now_ms, "cause=battery_dead")
            return [Action(ActionKind.KILL)]
        if self.battery_pct < LOW_BATTERY_PCT and not self.low_sent:
            self.low_sent = True
            self.record("low_battery", True, now_ms, f"battery_pct={self.battery_pct:.1f}")
            return [self._event(now_ms, "low_battery")]
        return []

    def _reboot(self, now_ms: int) -> list[Action]:
        """A watchdog reset: the link drops without DISCONNECT, back after 10–40 s, seq kept."""
        self.state = "down"
        self.record("reboot", False, now_ms, "cause=watchdog")
        self.next_reboot_ms = now_ms + int(self.rng.uniform(10_000, 40_000))
        return [Action(ActionKind.KILL)]

    def _apply(self, inj: Injection, now_ms: int) -> list[Action]:
        if inj.kind == "offline":
            self.state = "dead"
            self.record("device_offline", True, now_ms, "cause=killed")
            return [Action(ActionKind.KILL)]
        if inj.kind == "silent":
            self.state = "silent"
            self.record("device_offline", True, now_ms, "cause=silent")
            return []
        if inj.kind == "reboot":
            return self._reboot(now_ms)
        if inj.kind == "low_battery":
            self.battery_pct = min(self.battery_pct, LOW_BATTERY_PCT - 0.5)
            self.low_sent = False
            return self._power(now_ms)
        return self._inject(inj, now_ms)

    # -- for subclasses ------------------------------------------------------------------------

    def _sense(self, now_ms: int) -> tuple[list[Action], int]:
        """Measurements due at `now_ms` and when to sense next."""
        return [], NEVER

    def _inject(self, inj: Injection, now_ms: int) -> list[Action]:
        """Start an injected incident of this device type."""
        raise ValueError(f"{self.device.type} devices cannot show {inj.kind}")
