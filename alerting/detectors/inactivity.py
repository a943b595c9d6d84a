"""Inactivity: far less movement than the elder's own hour-of-day baseline, or none at all.

Movement times and the clock of `tick` are one time base: the engine feeds movement on each
device's corrected time (device `ts` plus its measured offset), which is the platform clock.

Each elder's movement is kept as steps per minute in a ring covering the longest window a
check reads (`max(window_h, FALLBACK_H)` hours: 240 minutes, 1,920 bytes), whatever the
devices send: a cane reports every two seconds while it moves, and a list of every report
took tens of KiB per elder. Windows are read to the minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alerting.geo import local_hour
from alerting.model import Clear, Finding, Trigger
from gateway.contract import AlertKind, AlertStatus, Severity

HOUR_MS = 3_600_000
# Compare the last three hours: long enough that a nap or a quiet meal does not count.
DEFAULT_WINDOW_H = 3
# "Far less": under a tenth of what this elder usually moves at these hours.
DEFAULT_RATIO = 0.1
# Only meaningful when the baseline expects real movement (about 10 minutes of walking
# at the ~100 steps/min cadence of older adults) over the window.
MIN_EXPECTED_STEPS = 300.0
# Fixed rule for elders with no history yet: no movement at all for 4 h in the daytime
# (08:00-20:00), as in common telecare "activity monitoring" defaults.
FALLBACK_H = 4
DAY_START_H, DAY_END_H = 8, 20
# Movement that closes the alert: a few minutes of walking.
RESUME_STEPS = 100.0
# A cane moving for one second is counted as 1.5 steps (older adults' cadence ~90-100/min).
CANE_STEPS_PER_S = 1.5
MINUTE_MS = 60_000


@dataclass(slots=True)
class _Elder:
    """Steps per minute in a ring (slot = minute % slots; `minute` says which minute a slot
    holds, -1 none), the newest movement time and the latest time with steps."""

    steps: npt.NDArray[np.float32]
    minute: npt.NDArray[np.int32]
    newest_ms: int | None = None
    moved_ms: int | None = None
    first_ms: int | None = None
    device_id: str = ""
    baseline: tuple[float, ...] | None = None
    alerted: bool = False
    checked_ms: int = 0


class InactivityDetector:
    """Keeps each elder's movement over the last hours and compares it with their baseline."""

    def __init__(self, window_h: int = DEFAULT_WINDOW_H, ratio: float = DEFAULT_RATIO) -> None:
        self.window_h = window_h
        self.ratio = ratio
        self.slots = max(window_h, FALLBACK_H) * 60
        self._elders: dict[str, _Elder] = {}

    def _elder(self, elder_id: str) -> _Elder:
        elder = self._elders.get(elder_id)
        if elder is None:
            elder = self._elders[elder_id] = _Elder(
                np.zeros(self.slots, np.float32), np.full(self.slots, -1, np.int32)
            )
        return elder

    def set_baseline(self, elder_id: str, steps_by_hour: Sequence[float]) -> None:
        """Set the elder's usual steps per local hour of day (24 values) from stored history."""
        if len(steps_by_hour) != 24:
            raise ValueError("a baseline has 24 hourly values")
        self._elder(elder_id).baseline = tuple(float(v) for v in steps_by_hour)

    def mark_alerted(self, elder_id: str) -> None:
        """Note that an active inactivity alert exists (state reload)."""
        self._elder(elder_id).alerted = True

    def on_movement(self, elder_id: str, device_id: str, ts: int, steps: float) -> list[Finding]:
        """Record movement (steps, or cane seconds converted) measured at device time `ts`."""
        elder = self._elder(elder_id)
        if elder.first_ms is None:
            elder.first_ms = ts
        elder.device_id = device_id
        minute = ts // MINUTE_MS
        slot = minute % self.slots
        held = int(elder.minute[slot])
        if held < minute:  # a minute the ring no longer needs: start it afresh
            elder.minute[slot] = minute
            elder.steps[slot] = 0.0
        if held <= minute:  # else older than the ring covers: outside every window
            elder.steps[slot] += steps
        elder.newest_ms = ts if elder.newest_ms is None else max(elder.newest_ms, ts)
        if steps > 0:
            elder.moved_ms = ts if elder.moved_ms is None else max(elder.moved_ms, ts)
        if elder.alerted and self._moved(elder, ts - HOUR_MS, ts) >= RESUME_STEPS:
            elder.alerted = False
            note = "movement resumed"
            return [Clear(AlertKind.INACTIVITY, device_id, ts, AlertStatus.RESOLVED, note)]
        return []

    def tick(self, now_ms: int) -> list[Finding]:
        """Check each elder at most once a minute."""
        out: list[Finding] = []
        for elder in self._elders.values():
            if elder.alerted or elder.first_ms is None or now_ms - elder.checked_ms < 60_000:
                continue
            elder.checked_ms = now_ms
            finding = self._check(elder, now_ms)
            if finding is not None:
                elder.alerted = True
                out.append(finding)
        return out

    @staticmethod
    def _since(elder: _Elder, window_start_ms: int) -> int:
        """When the quiet began: the last movement, else the first report, at latest the
        start of the window found too quiet (a few steps do not end it). A restart that finds
        the same quiet finds a start no later than this (see store.raise_alert)."""
        assert elder.first_ms is not None and elder.newest_ms is not None
        span_ms = len(elder.steps) * MINUTE_MS
        recent = elder.moved_ms is not None and elder.moved_ms >= elder.newest_ms - span_ms
        last_ms = elder.moved_ms if recent and elder.moved_ms is not None else elder.first_ms
        return min(last_ms, window_start_ms)

    @staticmethod
    def _moved(elder: _Elder, since_ms: int, until_ms: int) -> float:
        """Steps in the minutes from `since_ms`'s to `until_ms`'s."""
        held = (elder.minute >= since_ms // MINUTE_MS) & (elder.minute <= until_ms // MINUTE_MS)
        return float(elder.steps[held].sum())

    def _check(self, elder: _Elder, now_ms: int) -> Trigger | None:
        assert elder.first_ms is not None
        if elder.baseline is not None and sum(elder.baseline) > 0:
            if now_ms - elder.first_ms < self.window_h * HOUR_MS:
                return None
            hours = [local_hour(now_ms - k * HOUR_MS) for k in range(1, self.window_h + 1)]
            expected = sum(elder.baseline[h] for h in hours)
            moved = self._moved(elder, now_ms - self.window_h * HOUR_MS, now_ms)
            if expected >= MIN_EXPECTED_STEPS and moved < self.ratio * expected:
                reason = f"{moved:.0f} steps in {self.window_h} h, usually {expected:.0f}"
                return Trigger(
                    AlertKind.INACTIVITY,
                    Severity.MEDIUM,
                    elder.device_id,
                    self._since(elder, now_ms - self.window_h * HOUR_MS),
                    reason,
                )
            return None
        hour = local_hour(now_ms)
        if not DAY_START_H <= hour < DAY_END_H or now_ms - elder.first_ms < FALLBACK_H * HOUR_MS:
            return None
        if self._moved(elder, now_ms - FALLBACK_H * HOUR_MS, now_ms) <= 0:
            reason = f"no movement for {FALLBACK_H} h in the daytime (no baseline yet)"
            since_ms = self._since(elder, now_ms - FALLBACK_H * HOUR_MS)
            return Trigger(AlertKind.INACTIVITY, Severity.MEDIUM, elder.device_id, since_ms, reason)
        return None
