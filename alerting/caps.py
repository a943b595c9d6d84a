"""Per-device caps on what the detectors consider, so one device cannot grow memory or
starve the others (pure: platform and device times passed in)."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

from alerting.fall_features import POST_S, PRE_S, RECENTRE_AFTER_S

logger = logging.getLogger(__name__)

# Telemetry considered per device: contract §1 has a cane send one window per ~2 s while
# moving and a band one fix per 30 s, so 4 messages/s is 8x the busiest device. A gateway
# replaying a buffer after an outage sends faster: 600 messages (20 minutes of cane windows)
# may arrive at once before the rate applies.
RATE_PER_S = 4.0
BURST = 600.0
# Windows the fall detector buffers per cane: it keeps the newest 16 s of device time
# (alerting.detectors.fall._KEEP_S), eight 2 s windows; 32 leaves room for short windows and
# reordering. A valid 16 KiB window holds ~750 samples, ~18 KB as float64: ≤ ~0.6 MB a cane.
MAX_WINDOWS = 32
KEEP_MS = int((PRE_S + POST_S + RECENTRE_AFTER_S + 6.0) * 1000)
# At most one WARNING per device per minute, however hard it floods.
WARN_EVERY_MS = 60_000


@dataclass(slots=True)
class _Device:
    tokens: float = BURST
    refilled_ms: int | None = None
    window_ends: deque[int] = field(default_factory=deque)
    warned_ms: int = -(10**15)


class DeviceCaps:
    """Token bucket of telemetry per device, and a bound on buffered cane windows.

    Events and statuses are never capped: an SOS from a device that also floods telemetry
    must still page, and both are bounded by their detectors' own state.
    """

    def __init__(
        self,
        rate_per_s: float = RATE_PER_S,
        burst: float = BURST,
        max_windows: int = MAX_WINDOWS,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_windows = max_windows
        self._devices: dict[str, _Device] = {}

    def admit(self, device_id: str, now_ms: int) -> bool:
        """Whether one more telemetry message of `device_id` received at `now_ms` is considered."""
        dev = self._devices.setdefault(device_id, _Device(tokens=self.burst))
        if dev.refilled_ms is not None and now_ms > dev.refilled_ms:
            gained = (now_ms - dev.refilled_ms) / 1000 * self.rate_per_s
            dev.tokens = min(self.burst, dev.tokens + gained)
        dev.refilled_ms = now_ms if dev.refilled_ms is None else max(dev.refilled_ms, now_ms)
        if dev.tokens < 1.0:
            self._warn(
                device_id, dev, now_ms, "more than %.0f telemetry messages/s", self.rate_per_s
            )
            return False
        dev.tokens -= 1.0
        return True

    def buffer_window(self, device_id: str, end_ms: int, now_ms: int) -> bool:
        """Whether a cane window ending at `end_ms` (device time) may join the buffer."""
        dev = self._devices.setdefault(device_id, _Device(tokens=self.burst))
        ends = dev.window_ends
        newest = max(end_ms, ends[-1]) if ends else end_ms
        while ends and ends[0] < newest - KEEP_MS:
            ends.popleft()
        if len(ends) >= self.max_windows:
            self._warn(
                device_id, dev, now_ms, "more than %d windows in %d ms", self.max_windows, KEEP_MS
            )
            return False
        if ends and end_ms < ends[-1]:
            ends.append(end_ms)
            dev.window_ends = deque(sorted(ends))
        else:
            ends.append(end_ms)
        return True

    def _warn(self, device_id: str, dev: _Device, now_ms: int, what: str, *args: object) -> None:
        if now_ms - dev.warned_ms >= WARN_EVERY_MS:
            dev.warned_ms = now_ms
            logger.warning(
                "device %s over its cap: %s; ignoring the excess", device_id, what % args
            )
