"""Device health: offline (Last Will or silence) and low battery, one alert until recovery."""

from __future__ import annotations

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

    def watch(self, device_id: str, dtype: DeviceType, heartbeat_s: int, since_ms: int) -> None:
        """Start watching a device, counting its silence from `since_ms` unless heard later."""
        self._types[device_id] = dtype
        self._heartbeat_s[device_id] = heartbeat_s
        self._last_seen_ms[device_id] = max(self._last_seen_ms.get(device_id, 0), since_ms)

    def unwatch(self, device_id: str) -> None:
        """Stop watching a device (no longer registered here): its silence raises nothing."""
        for table in (self._will_ms, self._heartbeat_s, self._types, self._last_seen_ms):
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
            if device_id not in self._offline:
                self._will_ms.setdefault(device_id, now_ms)
                out.extend(self._wills(now_ms))
            return out
        self._will_ms.pop(device_id, None)
        if isinstance(message, Status) and message.heartbeat_s:
            self._heartbeat_s[device_id] = message.heartbeat_s
        self._last_seen_ms[device_id] = max(self._last_seen_ms.get(device_id, 0), now_ms)
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
        """Flag devices silent for 2.5 x heartbeat_s (contract §1 "Status")."""
        out = self._wills(now_ms)
        for device_id, seen_ms in self._last_seen_ms.items():
            if device_id in self._offline:
                continue
            limit_ms = int(OFFLINE_HEARTBEATS * self._heartbeat_s.get(device_id, 300) * 1000)
            if now_ms - seen_ms >= limit_ms:
                self._offline.add(device_id)
                silent_s = (now_ms - seen_ms) / 1000
                # The condition began when the device was last heard: a restart that finds
                # the same silence finds the same start (see store.raise_alert).
                out.append(self._trigger(device_id, seen_ms, f"silent for {silent_s:.0f} s"))
        return out

    def _wills(self, now_ms: int) -> list[Finding]:
        """Wills not followed by a reconnect within the grace period."""
        out: list[Finding] = []
        for device_id, will_ms in list(self._will_ms.items()):
            hb_ms = OFFLINE_HEARTBEATS * self._heartbeat_s.get(device_id, 300) * 1000
            if now_ms - will_ms >= min(self.will_grace_ms, hb_ms):
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
