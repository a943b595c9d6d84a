"""SOS: a button press, a band or cane `sos`; a wearer's `cancel` within the grace period."""

from __future__ import annotations

from alerting.model import Clear, Finding, Trigger
from gateway.contract import AlertKind, AlertStatus, DeviceType, Severity
from gateway.messages import Event

# Personal alarms let the wearer cancel a false press; telecare practice (TEC Services
# Association code of practice) gives the wearer a short window, typically 30 s.
DEFAULT_GRACE_S = 30.0

_SOS_EVENTS = {
    DeviceType.BUTTON: frozenset({"press", "long_press"}),
    DeviceType.BAND: frozenset({"sos"}),
    DeviceType.CANE: frozenset({"sos"}),
}


class SosDetector:
    """Raises immediately on a press; cancels when the same button sends `cancel` in time."""

    def __init__(self, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.grace_ms = int(grace_s * 1000)
        self._last_press_ts: dict[str, int] = {}

    def on_event(self, event: Event) -> list[Finding]:
        """Handle one device event."""
        if event.event in _SOS_EVENTS.get(event.type, frozenset()):
            self._last_press_ts[event.device_id] = event.ts
            how = "long press" if event.event == "long_press" else event.event
            return [Trigger(AlertKind.SOS, Severity.CRITICAL, event.device_id, event.ts, how)]
        if event.type is DeviceType.BUTTON and event.event == "cancel":
            pressed = self._last_press_ts.get(event.device_id)
            if pressed is not None and 0 <= event.ts - pressed <= self.grace_ms:
                del self._last_press_ts[event.device_id]
                note = (
                    f"cancelled by the wearer {(event.ts - pressed) / 1000:.0f} s after the press"
                )
                return [
                    Clear(AlertKind.SOS, event.device_id, event.ts, AlertStatus.CANCELLED, note)
                ]
        return []
