"""Smoke: every threshold crossing pages at once, unverified; a nuisance that clears closes itself.

Modelled on a fire panel's alarm verification feature (NFPA 72 §23.8.5.4.1; EN 54-2 §7.11
delays to outputs) and on telecare call-back, with one difference that suits a home where the
resident may not be able to act: the centre is told at the crossing, not after the check. The
alert is raised as *unverified* on the first reading at or above the EN 54-7 threshold (or the
detector's own `alarm`), so a real fire reaches its centre within the platform's processing
time of the crossing. It becomes *verified* on fire-level obscuration, on heat, or when the
smoke is still there at the end of the verification period. An unverified alert whose room
clears (obscuration back under the threshold, the detector's `clear`, or a `hush` at the
detector) within the verification period is resolved automatically with the outcome
`nuisance`, before anyone is sent; the family sees it closed.

Every trigger from a crossing until the room is clear again (or the nuisance closed) carries
that first trigger's time as its episode start (`Trigger.episode_ts`): smoke that stays after
a person closed its alert does not page again; a room that clears and fills again does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from alerting.model import Clear, Finding, Trigger
from gateway.contract import AlertKind, AlertStatus, Severity
from gateway.messages import Event, SmokeTelemetry

# EN 54-7 point smoke detectors alarm at or above 0.05 dB/m of optical obscuration.
ALARM_DB_M = 0.05
# Back under this counts as cleared: 20 % below the threshold, far above the sensor noise
# (~0.0005 dB/m), so a nuisance hovering at the threshold does not open and close in turn.
CLEAR_DB_M = 0.04
# The top of the EN 54-7 alarm range (0.05-0.2 dB/m); cooking and shower steam seldom
# get this far at the ceiling, a growing fire always does.
FIRE_DB_M = 0.2
# EN 54-5 class A1 heat detectors respond from 54-65 °C: heat of this order is fire, not steam.
FIRE_TEMP_C = 57.0
# Relative growth per second that counts as "rising" (see SmokeDetector._rising).
MIN_GROWTH_PER_S = 0.0065
# EN 14604 lets a hush silence an alarm for at most 15 minutes.
HUSH_S = 15 * 60.0
# How long after the crossing a clearing room still closes the alert as a nuisance: a fire
# panel's verification cycle (NFPA 72 §23.8.5.4.1 retards a report by at most 60 s, and the
# confirmation window follows it) and about the time a telecare operator needs to answer and
# call back (TEC Quality: 97.5 % of calls answered within 60 s). Later, a person closes it.
VERIFY_S = 120.0
NUISANCE_NOTE = "nuisance"
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
    unverified_since_ts: int | None = None  # crossing that raised the alert, while unverified
    episode_ts: int | None = None  # first trigger since the room was last clear

    def rearm(self) -> None:
        """The room is clear: the next crossing pages again, as a new episode."""
        self.alerted = False
        self.episode_ts = None

    def trigger(self, device_id: str, ts: int, reason: str) -> Trigger:
        """A smoke trigger of the room's current episode (started now if none is running)."""
        if self.episode_ts is None:
            self.episode_ts = ts
        return Trigger(
            AlertKind.SMOKE, Severity.CRITICAL, device_id, ts, reason, episode_ts=self.episode_ts
        )


class SmokeDetector:
    """Raises on every crossing (unverified), verifies fires, and closes nuisances that clear.

    Fire is confirmed by obscuration above `FIRE_DB_M`, heat above `FIRE_TEMP_C`, or smoke
    still over the threshold when the verification period ends. Obscuration at or above the
    EN 54-7 threshold growing as fast as a t² fire (whether or not the device has sounded its
    own `alarm` yet) is paged as a suspected fire and stays unverified until then. A `hush`
    mutes the threshold rule for up to 15 minutes (EN 14604) but never the fire-level ones;
    `clear` re-arms the room.

    Args:
        verify_s: the verification period (see `VERIFY_S`).
    """

    def __init__(self, verify_s: float = VERIFY_S) -> None:
        self.verify_ms = int(verify_s * 1000)
        self._rooms: dict[str, _Room] = {}

    def mark_alerted(self, device_id: str) -> None:
        """Note that an active smoke alert exists for this detector (state reload).

        After a restart the alert's verification state is unknown: it is kept for a person to
        close, never auto-closed.
        """
        self._rooms.setdefault(device_id, _Room()).alerted = True

    def on_event(self, event: Event) -> list[Finding]:
        """Handle `alarm`, `hush` and `clear` (and ignore `test`)."""
        room = self._rooms.setdefault(event.device_id, _Room())
        if event.event == "alarm":
            room.device_alarm_ts = event.ts
            if event.ts < room.hushed_until_ts:
                return []
            if self._rising(room):
                return self._suspect(
                    event.device_id, room, event.ts, "detector alarm, smoke rising"
                )
            return self._unverified(event.device_id, room, event.ts, "detector alarm")
        if event.event == "hush":
            room.hushed_until_ts = event.ts + int(HUSH_S * 1000)
            room.device_alarm_ts = None
            return self._nuisance(event.device_id, room, event.ts, "hushed at the detector")
        if event.event == "clear":
            out = self._nuisance(event.device_id, room, event.ts, "detector cleared")
            room.device_alarm_ts = None
            room.above_since_ts = None
            room.hushed_until_ts = 0
            room.rearm()
            room.unverified_since_ts = None
            return out
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
            if db_m >= CLEAR_DB_M:
                return []
            out = self._nuisance(
                reading.device_id, room, ts, f"obscuration back to {db_m:.3f} dB/m"
            )
            room.rearm()  # the next crossing pages again
            return out
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
        if self._rising(room):
            what = "detector alarm, smoke rising" if room.device_alarm_ts is not None else None
            return self._suspect(
                reading.device_id, room, ts, what or f"obscuration {db_m:.3f} dB/m, rising"
            )
        return self._unverified(reading.device_id, room, ts, f"obscuration {db_m:.3f} dB/m")

    @staticmethod
    def _rising(room: _Room) -> bool:
        """Obscuration growing steadily over the last three readings, the last above threshold.

        A flaming fire grows as t² (NFPA 72 design fire), so when it crosses the threshold
        at time t its obscuration grows by 2/t per second: at least 0.8 %/s for fires that
        take up to 4 minutes to get there. A nuisance peak crossing near its top grows more
        slowly and stays unverified until it either fades or keeps climbing.
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
    def _unverified(device_id: str, room: _Room, ts: int, what: str) -> list[Finding]:
        if room.alerted:
            return []
        room.alerted = True
        room.unverified_since_ts = ts
        reason = f"unverified: {what}; fire not yet confirmed"
        return [room.trigger(device_id, ts, reason)]

    @staticmethod
    def _suspect(device_id: str, room: _Room, ts: int, reason: str) -> list[Finding]:
        """Growth like a t² fire: paged as a suspected fire, still unverified.

        A fire panel confirms an alarm only if it is still present after the verification
        period; a nuisance can rise steeply too (a shower door opening), and it clears.
        """
        if not room.alerted:
            room.unverified_since_ts = ts
        room.alerted = True
        text = f"fire suspected: {reason}"
        return [room.trigger(device_id, ts, text)]

    @staticmethod
    def _fire(device_id: str, room: _Room, ts: int, reason: str) -> list[Finding]:
        room.alerted = True
        room.unverified_since_ts = None
        return [room.trigger(device_id, ts, f"fire: {reason}")]

    def _nuisance(self, device_id: str, room: _Room, ts: int, what: str) -> list[Finding]:
        since = room.unverified_since_ts
        if since is None or not room.alerted:
            return []
        room.unverified_since_ts = None
        if ts - since > self.verify_ms:
            return []  # past the verification period: a person closes it
        room.rearm()
        note = f"{NUISANCE_NOTE}: {what} {(ts - since) / 1000:.0f} s after the crossing"
        return [Clear(AlertKind.SMOKE, device_id, ts, AlertStatus.RESOLVED, note)]
