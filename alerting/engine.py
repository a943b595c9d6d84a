"""The detection core: typed device messages and clock ticks in, alert actions out (pure).

Time: every detector runs on one base. Device times are put on the platform clock with each
device's measured offset (`alerting.clock`), silence and "the cane went quiet" are measured
between receive times, and each trigger keeps the identity `(device_id, ts, seq)` of the
message that caused it so that a replay of that message never raises twice.

Retained statuses: the broker replays every device's retained status on each subscribe
(MQTT 5 §3.3.1.3), so a retained status says only what the device last declared, not that it
is alive now. It may update the declared heartbeat interval; it never counts as liveness,
never raises `device_offline` (a Will replayed long after the fact) or low battery (an old
level), and never clears an alert. A device that really died while alerting was away is
found by silence.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from alerting.caps import DeviceCaps
from alerting.clock import ClockOffsets
from alerting.detectors import (
    AnomalyDetector,
    FallDetector,
    HealthDetector,
    InactivityDetector,
    SafeZone,
    SmokeDetector,
    SosDetector,
    WanderingDetector,
)
from alerting.detectors.fall import FallClassifier
from alerting.detectors.health import DEFAULT_WILL_GRACE_S
from alerting.detectors.inactivity import CANE_STEPS_PER_S
from alerting.fall_features import accel_array, magnitude, std
from alerting.geo import implausible_fix
from alerting.model import Action, Clear, Close, Finding, Raise, Trigger
from gateway.contract import AlertKind, DeviceType
from gateway.fleet import Device, Elder, Fleet
from gateway.messages import BandTelemetry, CaneTelemetry, Event, Message, SmokeTelemetry, Status

logger = logging.getLogger(__name__)

# A cane window counts as movement when its magnitude varies more than sensor noise at rest.
_CANE_MOVING_STD_G = 0.05
# Message identities remembered per device, and for how long (platform time): covers QoS 1
# redeliveries on a resumed session (MQTT 5 §4.4) and a burst replayed twice by a gateway;
# the store covers replays after a restart, for a day. `seq` goes up by one per message and
# survives reboots (contract §1), so the last _RECENT_KEYS identities are a bit per `seq`
# below the newest: 314 bytes per device with its dict entry and id, where a full window of
# (ts, seq) pairs took 61 KiB for a cane reporting every two seconds (tracemalloc).
_RECENT_KEYS = 256
_RECENT_MS = 10 * 60 * 1000


@dataclass(slots=True)
class _Identities:
    """One device's recent message identities: bit k of `seen` is `newest_seq - k`."""

    newest_seq: int
    seen: int
    max_ts: int
    at_ms: int

    def seen_before(self, ts: int, seq: int, now_ms: int) -> bool:
        """Whether (ts, seq) was handled already; remembers it when not.

        A `seq` inside the window is new when its bit is clear (a late delivery) and a repeat
        when it is set, unless its `ts` is newer than every remembered one by more than a
        device's stamping jitter: then, like a `seq` older than the window with such a `ts`,
        it comes from a device whose counter restarted (against the contract) and the window
        starts again from it. Any other `seq` older than the window cannot be told and counts
        as new."""
        if now_ms - self.at_ms > _RECENT_MS:
            self.newest_seq, self.seen, self.max_ts, self.at_ms = seq, 1, ts, now_ms
            return False
        back = self.newest_seq - seq
        if back < 0:
            # Shifting by a huge jump would build a huge integer: past the window, start anew.
            ahead = ((self.seen << -back) | 1) & _WINDOW_MASK if -back < _RECENT_KEYS else 1
            self.seen, self.newest_seq, self.at_ms = ahead, seq, now_ms
            self.max_ts = max(self.max_ts, ts)
            return False
        if back < _RECENT_KEYS:
            if not self.seen >> back & 1:
                self.seen |= 1 << back  # late, and new
                self.max_ts = max(self.max_ts, ts)
                return False
            if ts <= self.max_ts + _STAMP_JITTER_MS:
                return True
        if ts > self.max_ts + _STAMP_JITTER_MS:
            self.newest_seq, self.seen, self.max_ts, self.at_ms = seq, 1, ts, now_ms
        return False


_WINDOW_MASK = (1 << _RECENT_KEYS) - 1
# Device time may run back this much between consecutive messages (a cane stamps a window
# when it sends it; alerting.clock's DEFAULT_STEP_MS) without anything being wrong.
_STAMP_JITTER_MS = 2_000


@dataclass(slots=True)
class EngineStats:
    """Counters of what the engine saw."""

    messages: int = 0
    duplicates: int = 0
    unknown_devices: int = 0
    triggers: int = 0
    clears: int = 0
    retained: int = 0  # retained statuses replayed by the broker, not taken as news
    implausible_fixes: int = 0  # positions never used to place an alert
    late_fixes: int = 0  # positions older than the newest one, not used to move it
    over_rate: int = 0  # telemetry beyond its device's rate (alerting.caps)
    over_window_cap: int = 0  # cane windows beyond its buffer cap (alerting.caps)
    by_kind: dict[str, int] = field(default_factory=dict)


class Engine:
    """Routes each message to the detectors of its device type and maps findings to elders.

    Args:
        fleet: the registry (elders and devices; centres are dispatch's business).
        fall_model: the fall classifier.
        now_ms: the clock at start: silence is counted from here for devices not heard yet.
        sos_grace_s: how long the wearer may cancel a press.
        will_grace_s: how long a Last Will waits for a reconnect before it pages.
        fall_threshold: the classifier's probability bar.
    """

    def __init__(
        self,
        fleet: Fleet,
        fall_model: FallClassifier,
        now_ms: int,
        *,
        sos_grace_s: float = 30.0,
        fall_threshold: float = 0.5,
        will_grace_s: float = DEFAULT_WILL_GRACE_S,
    ) -> None:
        self.sos = SosDetector(sos_grace_s)
        self.smoke = SmokeDetector()
        self.fall = FallDetector(fall_model, threshold=fall_threshold)
        self.wandering = WanderingDetector()
        self.inactivity = InactivityDetector()
        self.anomaly = AnomalyDetector()
        self.health = HealthDetector({}, {}, will_grace_s)
        self.stats = EngineStats()
        self.clocks = ClockOffsets()
        self.caps = DeviceCaps()
        self._devices: dict[str, Device] = {}
        self._elders: dict[str, Elder] = {}
        self._centers: list[tuple[float, float]] = []
        # device -> (corrected ts, lat, lon) of its newest plausible fix, and that fix's `seq`
        self._positions: dict[str, tuple[int, float, float]] = {}
        self._position_seq: dict[str, int] = {}
        self._recent: dict[str, _Identities] = {}
        self._newest: dict[str, tuple[int, int]] = {}  # device -> (ts, seq) of its newest message
        self._implausible: set[str] = set()
        self.set_fleet(fleet, now_ms)

    def set_fleet(self, fleet: Fleet, now_ms: int) -> None:
        """Adopt a (re)loaded registry; new devices are watched from `now_ms`.

        Devices no longer in it (removed, or moved to an elder of another partition,
        alerting.partition) are forgotten: their messages count as unknown and their silence
        raises nothing.
        """
        self._elders = {e.id: e for e in fleet.elders}
        self._centers = [(c.lat, c.lon) for c in fleet.care_centers]
        kept = {d.id for d in fleet.devices}
        for gone in [d for d in self._devices if d not in kept]:
            del self._devices[gone]
            self.health.unwatch(gone)
        for device in fleet.devices:
            if device.id not in self._devices:
                self.health.watch(device.id, device.type, device.heartbeat_s, now_ms)
            self._devices[device.id] = device
            elder = self._elders.get(device.elder_id)
            if elder is not None and device.type is DeviceType.BAND:
                zone = SafeZone(elder.home_lat, elder.home_lon, elder.safe_radius_m)
                self.wandering.set_zone(device.id, zone)

    def device(self, device_id: str) -> Device | None:
        """The registered device, if any."""
        return self._devices.get(device_id)

    def device_types(self) -> dict[str, DeviceType]:
        """Every registered device id -> its type."""
        return {d.id: d.type for d in self._devices.values()}

    def registry(self, device_id: str) -> DeviceType | None:
        """Device id -> registered type (the codec's registry callback)."""
        device = self._devices.get(device_id)
        return device.type if device else None

    def restore(self, active: Iterable[tuple[AlertKind, str, str]]) -> None:
        """Reload detector state from active alerts (kind, elder_id, device_id) after a restart."""
        for kind, elder_id, device_id in active:
            if kind is AlertKind.DEVICE_OFFLINE:
                self.health.mark_offline(device_id)
            elif kind is AlertKind.LOW_BATTERY:
                self.health.mark_low(device_id)
            elif kind is AlertKind.WANDERING:
                self.wandering.mark_alerted(device_id)
            elif kind is AlertKind.SMOKE:
                self.smoke.mark_alerted(device_id)
            elif kind is AlertKind.INACTIVITY:
                self.inactivity.mark_alerted(elder_id)

    def on_message(self, message: Message, now_ms: int, *, retained: bool = False) -> list[Action]:
        """Handle one decoded device message.

        Args:
            message: the message.
            now_ms: when it was received, platform clock.
            retained: the broker replayed it as a retained message on (re)subscribe.
        """
        device = self._devices.get(message.device_id)
        if device is None:
            self.stats.unknown_devices += 1
            return []
        if isinstance(message, Status):
            return self._status(message, now_ms, retained=retained)
        if not isinstance(message, Event) and not self.caps.admit(device.id, now_ms):
            self.stats.over_rate += 1
            return []
        if self._seen(device.id, (message.ts, message.seq), now_ms):
            self.stats.duplicates += 1
            logger.debug("duplicate message %s ts=%d seq=%d", device.id, message.ts, message.seq)
            return []
        self.stats.messages += 1
        newest = self._newest.get(device.id)
        if newest is None or message.seq > newest[1]:
            self._newest[device.id] = (message.ts, message.seq)
        offset_ms = self.clocks.observe(device.id, message.ts, message.seq, now_ms)
        local = replace(message, ts=message.ts + offset_ms) if offset_ms else message
        findings = self.health.on_message(local, now_ms)
        # `steps` count since the device's previous message (contract §1): the time they
        # cover is known only when that message was the one just before (seq + 1), on device
        # time; else 0 (unknown: one was lost in between, or this one comes late).
        follows = newest is not None and message.seq == newest[1] + 1
        interval_ms = message.ts - newest[0] if newest is not None and follows else 0
        findings.extend(self._detect(device, local, now_ms, interval_ms))
        return self._actions([_stamp(f, message.ts, message.seq) for f in findings])

    def _status(self, status: Status, now_ms: int, *, retained: bool) -> list[Action]:
        if retained:
            self.stats.retained += 1
            if status.heartbeat_s:
                self.health.note_heartbeat(status.device_id, status.heartbeat_s)
            logger.debug("retained status of %s replayed: not taken as news", status.device_id)
            return []
        self.stats.messages += 1
        return self._actions(self.health.on_message(status, now_ms))

    def _seen(self, device_id: str, key: tuple[int, int], now_ms: int) -> bool:
        """Whether this message identity (ts, seq) was handled recently (and remember it)."""
        recent = self._recent.get(device_id)
        if recent is None:
            self._recent[device_id] = _Identities(key[1], 1, key[0], now_ms)
            return False
        return recent.seen_before(key[0], key[1], now_ms)

    def tick(self, now_ms: int) -> list[Action]:
        """Time-driven checks on the platform clock: silence, quiet canes, inactivity."""
        findings = self.health.tick(now_ms)
        for finding in self.fall.tick(now_ms):
            # Decided because the cane went quiet: the newest window it sent is the cause.
            ts, seq = self._newest.get(finding.device_id, (finding.event_ts, -1))
            findings.append(_stamp(finding, ts, seq))
        findings.extend(self.inactivity.tick(now_ms))
        return self._actions(findings)

    def _detect(
        self, device: Device, message: Message, now_ms: int, interval_ms: int
    ) -> list[Finding]:
        """`interval_ms`: the time since the device's previous message (0: unknown)."""
        if isinstance(message, Event):
            out = self.sos.on_event(message)
            if device.type is DeviceType.SMOKE:
                out.extend(self.smoke.on_event(message))
            elif device.type is DeviceType.CANE and message.event == "fall_detected":
                out.extend(self.fall.on_hint(device.id, message.ts, now_ms))
            return out
        if isinstance(message, SmokeTelemetry):
            return self.smoke.on_reading(message)
        if isinstance(message, BandTelemetry):
            return self._band(device, message, interval_ms)
        if isinstance(message, CaneTelemetry):
            return self._cane(device, message, now_ms)
        return []

    def _place(
        self, device: Device, ts: int, seq: int, lat: float, lon: float, hacc_m: float | None
    ) -> str:
        """Take a fix (corrected time): "newest", "late" or "implausible".

        Newer is judged by the device's own counter `seq` (contract §1), never by the corrected
        time: the offset estimate moves as delivery delays change (a backlog drained, one quick
        delivery), and a drop larger than the report interval would make a newer fix look older.
        """
        elder = self._elders.get(device.elder_id)
        home = [(elder.home_lat, elder.home_lon)] if elder else []
        why = implausible_fix(lat, lon, hacc_m, itertools.chain(home, self._centers))
        if why is not None:
            self.stats.implausible_fixes += 1
            level = logging.DEBUG if device.id in self._implausible else logging.WARNING
            self._implausible.add(device.id)
            logger.log(level, "fix of %s not used to place alerts: %s", device.id, why)
            return "implausible"
        self._implausible.discard(device.id)
        known = self._positions.get(device.id)
        if known is not None and seq <= self._position_seq[device.id]:
            self.stats.late_fixes += 1
            logger.debug("late fix of %s (%d ms old) does not move it", device.id, known[0] - ts)
            return "late"
        self._positions[device.id] = (ts, lat, lon)
        self._position_seq[device.id] = seq
        return "newest"

    def _band(self, device: Device, fix: BandTelemetry, interval_ms: int) -> list[Finding]:
        placed = self._place(device, fix.ts, fix.seq, fix.lat, fix.lon, fix.hacc_m)
        out: list[Finding] = []
        if placed == "newest":
            out.extend(self.wandering.on_fix(device.id, fix.ts, fix.lat, fix.lon, fix.hacc_m))
        if fix.steps is not None:
            out.extend(self.inactivity.on_movement(device.elder_id, device.id, fix.ts, fix.steps))
        if fix.hr_bpm is not None and fix.worn is not False:
            out.extend(
                self.anomaly.on_sample(
                    device.elder_id, device.id, fix.ts, fix.hr_bpm, fix.steps or 0, interval_ms
                )
            )
        return out

    def _cane(self, device: Device, window: CaneTelemetry, now_ms: int) -> list[Finding]:
        if window.lat is not None and window.lon is not None:
            placed = self._place(
                device, window.ts, window.seq, window.lat, window.lon, window.hacc_m
            )
            if placed == "implausible":
                window = replace(window, lat=None, lon=None)
        if not self.caps.buffer_window(device.id, window.ts, now_ms):
            self.stats.over_window_cap += 1
            return []
        samples = accel_array(window.accel_g)
        mag = magnitude(samples)
        out = self.fall.on_window(window, now_ms, samples, mag)
        if std(mag) > _CANE_MOVING_STD_G:
            steps = CANE_STEPS_PER_S * len(mag) / window.rate_hz
            out.extend(self.inactivity.on_movement(device.elder_id, device.id, window.ts, steps))
        return out

    def _actions(self, findings: list[Finding]) -> list[Action]:
        out: list[Action] = []
        for finding in findings:
            device = self._devices.get(finding.device_id)
            if device is None:
                continue
            kind = finding.kind.value
            self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
            if isinstance(finding, Trigger):
                self.stats.triggers += 1
                lat, lon = self._where(device, finding)
                out.append(Raise(device.elder_id, finding, lat, lon))
            else:
                self.stats.clears += 1
                out.extend(self._close(device, finding))
        return out

    def _close(self, device: Device, clear: Clear) -> list[Action]:
        scope: str | None = device.id
        if clear.kind is AlertKind.DEVICE_OFFLINE:
            siblings = [d for d in self._devices.values() if d.elder_id == device.elder_id]
            if any(self.health.is_offline(d.id) for d in siblings):
                return []
            scope = None
        elif clear.kind is AlertKind.INACTIVITY:
            scope = None
        return [
            Close(
                device.elder_id,
                clear.kind,
                clear.status,
                device.id,
                clear.note,
                clear.event_ts,
                scope,
            )
        ]

    def _where(self, device: Device, trigger: Trigger) -> tuple[float, float]:
        """The alert position: the device's last known position, else the elder's home (§2)."""
        if trigger.kind is AlertKind.WANDERING and trigger.lat is not None:
            assert trigger.lon is not None
            return trigger.lat, trigger.lon
        if device.id in self._positions:
            _, lat, lon = self._positions[device.id]
            return lat, lon
        elder = self._elders[device.elder_id]
        return elder.home_lat, elder.home_lon


def _stamp(finding: Finding, ts: int, seq: int | None) -> Finding:
    """Give a finding the identity of the message that caused it (device time, as sent)."""
    if isinstance(finding, Trigger):
        return replace(finding, event_ts=ts, event_seq=seq)
    return replace(finding, event_ts=ts)


def finding_actions(engine: Engine, findings: list[Finding]) -> list[Action]:
    """Actions for findings decided after their message (the anomaly model's batched scoring);
    each finding already carries its message's identity."""
    return engine._actions(findings)
