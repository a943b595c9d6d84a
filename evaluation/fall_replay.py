"""Replay a recording through the fall detector window by window, as a cane would send it."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from alerting.detectors.fall import FallDetector
from alerting.model import Trigger
from gateway.contract import DeviceType
from gateway.messages import CaneTelemetry

WINDOW_S = 2.0
T0_MS = 1_764_316_800_000


def replay(
    detector: FallDetector,
    samples: NDArray[np.float64],
    rate_hz: int,
    *,
    device_id: str = "cane-replay",
    t0_ms: int = T0_MS,
    settle_s: float = 20.0,
    hint_every_window: bool = False,
) -> list[Trigger]:
    """Send `samples` as consecutive 2 s windows (the last one shorter), then let time pass.

    Each window is received when its last sample is taken; after the last one the platform
    clock runs on for `settle_s` (under the long-lie wait by default) so that impacts near
    the end are decided as a quiet cane's. With `hint_every_window` the cane also sends its
    own `fall_detected` after every window: the worst case of a firmware that flags every
    impact, which lowers the detector's bar to its hint bar for every impact.

    Returns:
        The fall triggers raised, in order.
    """
    size = max(1, round(WINDOW_S * rate_hz))
    found: list[Trigger] = []
    ts = t0_ms
    for seq, start in enumerate(range(0, len(samples), size)):
        window = samples[start : start + size]
        ts = t0_ms + round((start + len(window) - 1) * 1000 / rate_hz)
        msg = CaneTelemetry(
            device_id=device_id,
            type=DeviceType.CANE,
            seq=seq,
            ts=ts,
            rate_hz=rate_hz,
            accel_g=tuple((float(x), float(y), float(z)) for x, y, z in window),
        )
        found += [f for f in detector.on_window(msg, ts) if isinstance(f, Trigger)]
        if hint_every_window:
            found += [f for f in detector.on_hint(device_id, ts) if isinstance(f, Trigger)]
    for step_s in np.arange(1.0, settle_s + 1.0, 1.0):
        found += [f for f in detector.tick(ts + int(step_s * 1000)) if isinstance(f, Trigger)]
    return found
