"""Smoke: the detector's own alarm or rising obscuration, told apart from cooking and steam."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from alerting.model import Finding, Trigger
from gateway.contract import AlertKind, Severity
from gateway.messages import Event, SmokeTelemetry

# EN 54-7 point smoke detectors alarm at or above 0.05 dB/m of optical obscuration.
ALARM_DB_M = 0.05
# The top of the EN 54-7 alarm range (0.05-0.2 dB/m); cooking and shower steam seldom
# get this far at the ceiling, a growing fire always does.
FIRE_DB_M = 0.2
# EN 54-5 class A1 heat detectors respond from 54-65 °C: heat of this order is fire, not steam.
FIRE_TEMP_C = 57.0
# Relative growth per second that counts as "rising" (see SmokeDetector._rising).
MIN_GROWTH_PER_S = 0.0065
# EN 14604 lets a hush silence an alarm for at most 15 minutes.
HUSH_S = 15 * 60.0
_HISTORY = 12


@dataclass(slots=True)
class _Room:
    readings: deque[tuple[int, float, float]] = field(
        default_factory=lambda: deque(maxlen=_HISTORY)
    )
    above_since_ts: int | None = None
    device_alarm_ts: int | None = None
    hushed_until_ts: int = 0
    alerted: bool = False


class SmokeDetector:
    """Raises on fire, not on nuisance smoke.

    Fire is: obscuration at or above the EN 54-7 threshold growing as fast as a t² fire
    (whether or not the device has sounded its own `alarm` yet), obscuration above
    `FIRE_DB_M`, or heat above `FIRE_TEMP_C`. A nuisance peak that crosses the threshold
    near its top grows too slowly and never pages. A `hush` mutes the threshold rule for
    up to 15 minutes (EN 14604) but never the fire-level ones; `clear` re-arms the room.
    """

    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}

    def mark_alerted(self, device_id: str) -> None:
        """Note that an active smoke alert exists for this detector (state reload)."""
        self._rooms.setdefault(device_id, _Room()).alerted = True

    def on_event(self, event: Event) -> list[Finding]:
        """Handle `alarm`, `hush` and `clear` (and ignore `test`)."""
        room = self._rooms.setdefault(event.device_id, _Room())
        if event.event == "alarm":
            room.device_alarm_ts = event.ts
            if self._rising(room) and event.ts >= room.hushed_until_ts:
                return self._fire(event.device_id, room, event.ts, "detector alarm, smoke rising")
        elif event.event == "hush":
            room.hushed_until_ts = event.ts + int(HUSH_S * 1000)
            room.device_alarm_ts = None
        elif event.event == "clear":
            room.device_alarm_ts = None
            room.above_since_ts = None
            room.hushed_until_ts = 0
            room.alerted = False
        return []

    def on_reading(self, reading: SmokeTelemetry) -> list[Finding]:
        """Handle one obscuration/temperature reading."""
        room = self._rooms.setdefault(reading.device_id, _Room())
        ts, db_m = reading.ts, reading.smoke_db_m
        room.readings.append((ts, db_m, reading.temp_c))
        if db_m < ALARM_DB_M:
            room.above_since_ts = None
            if db_m < ALARM_DB_M / 2:
                room.device_alarm_ts = None
            return []
        if room.above_since_ts is None:
            room.above_since_ts = ts
        if db_m >= FIRE_DB_M:
            return self._fire(reading.device_id, room, ts, f"obscuration {db_m:.2f} dB/m")
        if reading.temp_c >= FIRE_TEMP_C:
            return self._fire(
                reading.device_id, room, ts, f"smoke with heat {reading.temp_c:.0f} °C"
            )
        if ts < room.hushed_until_ts:
            return []
        if not self._rising(room):
            return []
        if room.device_alarm_ts is not None:
            return self._fire(reading.device_id, room, ts, "detector alarm, smoke rising")
        return self._fire(reading.device_id, room, ts, f"obscuration {db_m:.3f} dB/m, rising")

    @staticmethod
    def _rising(room: _Room) -> bool:
        """Obscuration growing steadily over the last three readings, the last above threshold.

        A flaming fire grows as t² (NFPA 72 design fire), so when it crosses the threshold
        at time t its obscuration grows by 2/t per second: at least 0.8 %/s for fires that
        take up to 4 minutes to get there. A nuisance peak crossing near its top grows more
        slowly and is held until it either fades or keeps climbing.
        """
        if len(room.readings) < 3:
            return False
        recent = list(room.readings)[-4:]
        (_, a, _), (_, b, _), (t_c, c, _) = recent[-3:]
        t_a, first = recent[0][0], recent[0][1]
        if c < ALARM_DB_M or not c > b > a or t_c <= t_a:
            return False
        # Over up to 15 s, so sensor noise (~0.0005 dB/m) barely moves the estimate.
        growth_per_s = (c - first) / c / ((t_c - t_a) / 1000)
        return growth_per_s >= MIN_GROWTH_PER_S

    @staticmethod
    def _fire(device_id: str, room: _Room, ts: int, reason: str) -> list[Finding]:
        room.alerted = True
        return [Trigger(AlertKind.SMOKE, Severity.CRITICAL, device_id, ts, reason)]
