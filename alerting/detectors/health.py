"""Device health: offline (Last Will or silence) and low battery, one alert until recovery."""

from __future__ import annotations

import heapq

from alerting.model import Clear, Finding, Trigger
from gateway.contract import OFFLINE_HEARTBEATS, AlertKind, AlertStatus, DeviceType, Severity
from gateway.messages import Event, Message, Status

# Low-battery hysteresis: warn below 15 % (a common wearable "low" level), recover at 30 %
# so a battery hovering around the threshold does not flap.
LOW_BATTERY_PCT = 15.0
RECOVERED_BATTERY_PCT = 30.0

# A silent smoke detector or call button leaves the home unprotected: more urgent than a band.
# A Will is also published when a device's watchdog resets it; such reboots reconnect within
# seconds, so a Will pages only if the device has not come back after this grace period
# (always well inside the contract's 2.5 x heartbeat_s).
DEFAULT_WILL_GRACE_S = 60.0

_OFFLINE_SEVERITY = {
    DeviceType.SMOKE: Severity.HIGH,
    DeviceType.BUTTON: Severity.HIGH,
    DeviceType.BAND: Severity.MEDIUM,
    DeviceType.CANE: Severity.MEDIUM,
}


class HealthDetector:
    """Tracks when each device was last heard from (on the injected clock) and its battery."""

    def __init__(
        self,
        heartbeats_s: dict[str, int],
        types: dict[str, DeviceType],
        will_grace_s: float = DEFAULT_WILL_GRACE_S,
    ) -> None:
        self.will_grace_ms = int(will_grace_s * 1000)
        self._will_ms: dict[str, int] = {}
        self._heartbeat_s = dict(heartbeats_s)
        self._types = dict(types)
        self._last_seen_ms: dict[str, int] = {}
        self._offline: set[str] = set()
        self._low: set[str] = set()
        # Silence deadlines: a min-heap of (deadline ms, device), one live entry per watched
        # device, whose deadline `_due` holds (other heap entries are stale and skipped). A
        # message only moves `_last_seen_ms`; the entry is re-read when its deadline comes, so
        # a tick costs O(deadlines due x log n), not a scan of every device (245,000 at
        # Xicheng's size: 113 ms per scan on the development machine, twice a second).
        self._heap: list[tuple[int, str]] = []
        self._due: dict[str, int] = {}

    def watch(self, device_id: str, dtype: DeviceType, heartbeat_s: int, since_ms: int) -> None:
        """Start watching a device, counting its silence from `since_ms` unless heard later."""
        self._types[device_id] = dtype
        self._heartbeat_s[device_id] = heartbeat_s
        self._last_seen_ms[device_id] = max(self._last_seen_ms.get(device_id, 0), since_ms)
        self._schedule(device_id)

    def unwatch(self, device_id: str) -> None:
        """Stop watching a device (no longer registered here): its silence raises nothing."""
        for table in (self._will_ms, self._heartbeat_s, self._types, self._last_seen_ms, self._due):
            table.pop(device_id, None)
        self._offline.discard(device_id)
        self._low.discard(device_id)

    def mark_offline(self, device_id: str) -> None:
        """Note that an open alert already says this device is offline (state reload)."""
        self._offline.add(device_id)

    def mark_low(self, device_id: str) -> None:
        """Note that an open alert already says this device's battery is low (state reload)."""
        self._low.add(device_id)

    def note_heartbeat(self, device_id: str, heartbeat_s: int) -> None:
        """Adopt a device's declared heartbeat interval without counting it as heard from."""
        self._heartbeat_s[device_id] = heartbeat_s
        if device_id in self._last_seen_ms:
            self._schedule(device_id)

    def is_offline(self, device_id: str) -> bool:
        """Whether the device is currently considered offline."""
        return device_id in self._offline

    def on_message(self, message: Message, now_ms: int) -> list[Finding]:
        """Any message proves the device alive; a Will says it is gone.

        Args:
            message: a live message (never a retained replay: those prove nothing).
            now_ms: its receive time, platform clock.
        """
        device_id = message.device_id
        out: list[Finding] = []
        if isinstance(message, Status) and not message.online:
            self._last_seen_ms[device_id] = now_ms
            self._schedule(device_id)
            if device_id not in self._offline:
                self._will_ms.setdefault(device_id, now_ms)
                out.extend(self._wills(now_ms))
            return out
        self._will_ms.pop(device_id, None)
        self._last_seen_ms[device_id] = max(self._last_seen_ms.get(device_id, 0), now_ms)
        if isinstance(message, Status) and message.heartbeat_s:
            self._heartbeat_s[device_id] = message.heartbeat_s
            self._schedule(device_id)
        elif device_id not in self._due:
            self._schedule(device_id)
        if device_id in self._offline:
            self._offline.discard(device_id)
            event_ts = message.ts if message.ts is not None else now_ms
            note = "device back online"
            out.append(
                Clear(AlertKind.DEVICE_OFFLINE, device_id, event_ts, AlertStatus.RESOLVED, note)
            )
        out.extend(self._battery(message, now_ms))
        return out

    def tick(self, now_ms: int) -> list[Finding]:
        """Flag devices silent for 2.5 x heartbeat_s (contract §1 "Status").

        Only devices whose silence deadline has come are looked at; each is then either
        flagged or given its next deadline from when it was last heard.
        """
        out = self._wills(now_ms)
        heap, due = self._heap, self._due
        while heap and heap[0][0] <= now_ms:
            deadline, device_id = heapq.heappop(heap)
            if due.get(device_id) != deadline:
                continue  # stale: superseded by an earlier deadline, or unwatched
            del due[device_id]
            if device_id in self._offline:
                continue  # rescheduled by the message that brings it back
            seen_ms = self._last_seen_ms[device_id]
            if now_ms - seen_ms >= self._limit_ms(device_id):
                self._offline.add(device_id)
                silent_s = (now_ms - seen_ms) / 1000
                # The condition began when the device was last heard: a restart that finds
                # the same silence finds the same start (see store.raise_alert).
                out.append(self._trigger(device_id, seen_ms, f"silent for {silent_s:.0f} s"))
            else:
                self._schedule(device_id)
        return out

    def _limit_ms(self, device_id: str) -> int:
        return int(OFFLINE_HEARTBEATS * self._heartbeat_s.get(device_id, 300) * 1000)

    def _schedule(self, device_id: str) -> None:
        """Give a device a heap entry at its silence deadline, unless one as early exists."""
        deadline = self._last_seen_ms[device_id] + self._limit_ms(device_id)
        current = self._due.get(device_id)
        if current is None or deadline < current:
            self._due[device_id] = deadline
            heapq.heappush(self._heap, (deadline, device_id))

    def _wills(self, now_ms: int) -> list[Finding]:
        """Wills not followed by a reconnect within the grace period."""
        out: list[Finding] = []
        for device_id, will_ms in list(self._will_ms.items()):
            if now_ms - will_ms >= min(self.will_grace_ms, self._limit_ms(device_id)):
                del self._will_ms[device_id]
                self._offline.add(device_id)
                out.append(self._trigger(device_id, will_ms, "last will: connection lost"))
        return out

    def _trigger(self, device_id: str, ts: int, reason: str) -> Trigger:
        severity = _OFFLINE_SEVERITY.get(
            self._types.get(device_id, DeviceType.BAND), Severity.MEDIUM
        )
        return Trigger(AlertKind.DEVICE_OFFLINE, severity, device_id, ts, reason, episode_ts=ts)

    def _battery(self, message: Message, received_ms: int) -> list[Finding]:
        device_id = message.device_id
        # A status without `ts` is placed at its receive time, never at the epoch.
        ts = message.ts if message.ts is not None else received_ms
        if isinstance(message, Event) and message.event == "low_battery":
            self._low.add(device_id)
            return [
                Trigger(
                    AlertKind.LOW_BATTERY,
                    Severity.LOW,
                    device_id,
                    ts,
                    "device reports low battery",
                    episode_ts=ts,
                )
            ]
        pct = message.battery_pct
        if pct is None:
            return []
        if pct < LOW_BATTERY_PCT and device_id not in self._low:
            self._low.add(device_id)
            return [
                Trigger(
                    AlertKind.LOW_BATTERY,
                    Severity.LOW,
                    device_id,
                    ts,
                    f"battery {pct:.0f} %",
                    episode_ts=ts,
                )
            ]
        if pct >= RECOVERED_BATTERY_PCT and device_id in self._low:
            self._low.discard(device_id)
            note = f"battery recovered to {pct:.0f} %"
            return [Clear(AlertKind.LOW_BATTERY, device_id, ts, AlertStatus.RESOLVED, note)]
        return []
