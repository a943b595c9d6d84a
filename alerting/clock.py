"""Device clock offsets (pure): put every device's `ts` on the platform's time base.

A device's clock may be wrong by any amount: a day behind, minutes ahead, or reset to the
epoch after a battery change. Each message gives one sample of `received_ms - device_ts_ms`:
the true offset plus the network delay, plus the age of the message when a gateway replays an
old buffer. Delays only ever add, so the smallest sample over a recent window estimates the
offset (plus the smallest delay): the same idea as NTP's clock filter, which keeps the
sample of least round-trip delay out of its last eight (RFC 5905 §10).

A clock that steps backwards (a reset, or a correction of several minutes) makes every new
sample larger than the minimum, which would hide the step until the window runs out; it is
recognised at once because the per-device counter `seq` moves forward while `ts` moves back
(contract §1: `seq` is kept across reboots), and the estimate is re-anchored on the new clock.
A step forwards lowers the samples and is followed by the minimum immediately. The estimate
rises only on samples spread over half the window, so a replayed buffer arriving after a long
gap (every sample late) does not move it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

# Samples kept per device and how long one counts: long enough to catch one quick delivery
# among a band's 30-300 s reports, short enough to follow a drifting clock (a cheap crystal
# drifts ~50 ppm, 0.05 s in a quarter of an hour). At most 32: all of a band's quarter hour,
# and a minute of a moving cane's 2 s windows (a moving cane: 4.9 KiB, with 64 it was 8.3
# KiB; tracemalloc).
DEFAULT_WINDOW_MS = 15 * 60 * 1000
DEFAULT_MAX_SAMPLES = 32
# Device time moving back by more than this while `seq` moves forward is a clock step; less
# is the jitter of a device stamping windows when it sends them.
DEFAULT_STEP_MS = 2_000


@dataclass(slots=True)
class _Device:
    samples: deque[tuple[int, int]] = field(default_factory=deque)  # (received_ms, number)
    # The window's minimum in O(1): (offset_ms, number) of the samples that are smaller than
    # every later one, oldest first, so the front is the smallest still in the window.
    lows: deque[tuple[int, int]] = field(default_factory=deque)
    taken: int = 0  # samples numbered so far
    offset_ms: int = 0
    anchor_seq: int = 0  # first seq on the current clock
    before_ms: int | None = None  # offset of the clock before the last step
    newest_seq: int = -1
    newest_ts: int = 0
    newest_received_ms: int = 0


class ClockOffsets:
    """Per-device offset estimates: `corrected_ms = device_ts_ms + offset_ms`.

    Args:
        window_ms: how long (platform time) a sample counts towards the minimum.
        max_samples: at most this many samples per device.
        step_ms: a backwards step of device time larger than this, with `seq` increasing,
            re-anchors the estimate.
    """

    def __init__(
        self,
        window_ms: int = DEFAULT_WINDOW_MS,
        max_samples: int = DEFAULT_MAX_SAMPLES,
        step_ms: int = DEFAULT_STEP_MS,
    ) -> None:
        self.window_ms = window_ms
        self.max_samples = max_samples
        self.step_ms = step_ms
        self.steps = 0  # clock steps recognised, all devices
        self._devices: dict[str, _Device] = {}

    def observe(self, device_id: str, device_ts_ms: int, seq: int, received_ms: int) -> int:
        """Take one message's sample; returns the offset to add to its `ts`, ms."""
        dev = self._devices.get(device_id)
        sample = received_ms - device_ts_ms
        if dev is None:
            dev = self._devices[device_id] = _Device(offset_ms=sample, anchor_seq=seq)
        elif seq > dev.newest_seq and device_ts_ms < dev.newest_ts - self.step_ms:
            self.steps += 1
            dev.before_ms = dev.offset_ms
            dev.samples.clear()
            dev.lows.clear()
            dev.anchor_seq = seq
            dev.offset_ms = sample
        if seq > dev.newest_seq:
            dev.newest_seq, dev.newest_ts = seq, device_ts_ms
        if seq < dev.anchor_seq:
            # Sent before the last step: it belongs to the old clock.
            return dev.before_ms if dev.before_ms is not None else dev.offset_ms
        number = dev.taken
        dev.taken += 1
        samples, lows = dev.samples, dev.lows
        samples.append((received_ms, number))
        while lows and lows[-1][0] >= sample:
            lows.pop()
        lows.append((sample, number))
        dev.newest_received_ms = newest_ms = max(dev.newest_received_ms, received_ms)
        while len(samples) > 1 and (
            len(samples) > self.max_samples or samples[0][0] < newest_ms - self.window_ms
        ):
            samples.popleft()
        first = samples[0][1]
        while lows[0][1] < first:
            lows.popleft()
        lowest = lows[0][0]
        # The estimate may rise (a clock losing time) only on evidence spread over half the
        # window: after a gap, the first samples are often a replayed buffer, all of them late.
        span_ms = newest_ms - samples[0][0]
        if lowest <= dev.offset_ms or span_ms >= self.window_ms // 2:
            dev.offset_ms = lowest
        return dev.offset_ms

    def offset(self, device_id: str) -> int | None:
        """The current estimate for a device, ms (None before its first message)."""
        dev = self._devices.get(device_id)
        return dev.offset_ms if dev is not None else None

    def corrected(self, device_id: str, device_ts_ms: int) -> int:
        """A device time on the platform base (unchanged for a device not heard yet)."""
        return device_ts_ms + (self.offset(device_id) or 0)
