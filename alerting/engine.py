"""The detection core: typed device messages and clock ticks in, alert actions out (pure)."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

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
from alerting.fall_features import magnitude
from alerting.model import Action, Clear, Close, Finding, Raise, Trigger
from gateway.contract import AlertKind, DeviceType
from gateway.fleet import Device, Elder, Fleet
from gateway.messages import BandTelemetry, CaneTelemetry, Event, Message, SmokeTelemetry, Status

logger = logging.getLogger(__name__)

# A cane window counts as movement when its magnitude varies more than sensor noise at rest.
_CANE_MOVING_STD_G = 0.05
_RECENT_KEYS = 64


@dataclass(slots=True)
class EngineStats:
    """Counters of what the engine saw."""

    messages: int = 0
    duplicates: int = 0
    unknown_devices: int = 0
    triggers: int = 0
    clears: int = 0
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
        self._devices: dict[str, Device] = {}
        self._elders: dict[str, Elder] = {}
        self._positions: dict[str, tuple[float, float]] = {}
        self._recent: dict[str, deque[tuple[int, int]]] = {}
        self.set_fleet(fleet, now_ms)

    def set_fleet(self, fleet: Fleet, now_ms: int) -> None:
        """Adopt a (re)loaded registry; new devices are watched from `now_ms`."""
        self._elders = {e.id: e for e in fleet.elders}
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

    def on_message(self, message: Message, now_ms: int) -> list[Action]:
        """Handle one decoded device message received at `now_ms` (the platform clock)."""
        device = self._devices.get(message.device_id)
        if device is None:
            self.stats.unknown_devices += 1
            return []
        if message.ts is not None and not isinstance(message, Status):
            recent = self._recent.setdefault(device.id, deque(maxlen=_RECENT_KEYS))
            key = (message.ts, getattr(message, "seq", -1))
            if key in recent:
                self.stats.duplicates += 1
                return []
            recent.append(key)
        self.stats.messages += 1
        findings = self.health.on_message(message, now_ms)
        findings.extend(self._detect(device, message))
        return self._actions(findings)

    def tick(self, now_ms: int) -> list[Action]:
        """Time-driven checks: silence, impacts whose cane went quiet, inactivity."""
        findings = self.health.tick(now_ms)
        findings.extend(self.fall.tick(now_ms))
        findings.extend(self.inactivity.tick(now_ms))
        return self._actions(findings)

    def _detect(self, device: Device, message: Message) -> list[Finding]:
        if isinstance(message, Event):
            out = self.sos.on_event(message)
            if device.type is DeviceType.SMOKE:
                out.extend(self.smoke.on_event(message))
            elif device.type is DeviceType.CANE and message.event == "fall_detected":
                out.extend(self.fall.on_hint(device.id, message.ts))
            return out
        if isinstance(message, SmokeTelemetry):
            return self.smoke.on_reading(message)
        if isinstance(message, BandTelemetry):
            return self._band(device, message)
        if isinstance(message, CaneTelemetry):
            return self._cane(device, message)
        return []

    def _band(self, device: Device, fix: BandTelemetry) -> list[Finding]:
        self._positions[device.id] = (fix.lat, fix.lon)
        out = self.wandering.on_fix(device.id, fix.ts, fix.lat, fix.lon, fix.hacc_m)
        if fix.steps is not None:
            out.extend(self.inactivity.on_movement(device.elder_id, device.id, fix.ts, fix.steps))
        if fix.hr_bpm is not None and fix.worn is not False:
            out.extend(
                self.anomaly.on_sample(
                    device.elder_id, device.id, fix.ts, fix.hr_bpm, fix.steps or 0
                )
            )
        return out

    def _cane(self, device: Device, window: CaneTelemetry) -> list[Finding]:
        if window.lat is not None and window.lon is not None:
            self._positions[device.id] = (window.lat, window.lon)
        out = self.fall.on_window(window)
        mag = magnitude(np.asarray(window.accel_g, dtype=np.float64).reshape(-1, 3))
        if float(mag.std()) > _CANE_MOVING_STD_G:
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
        if trigger.lat is not None and trigger.lon is not None:
            return trigger.lat, trigger.lon
        if device.id in self._positions:
            return self._positions[device.id]
        elder = self._elders[device.elder_id]
        return elder.home_lat, elder.home_lon
