"""Fall: impacts in a cane's accelerometer windows, classified by a trained model.

Impacts and windows are placed on the cane's corrected device time; whether the cane went
quiet is decided on the platform clock from receive times only, so a cane whose clock is
wrong by any amount is decided after the same delay.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from alerting.fall_features import IMPACT_G, POST_S, PRE_S, fall_features, impact_indices, magnitude
from alerting.model import Finding, Trigger
from gateway.contract import AlertKind, Severity
from gateway.messages import CaneTelemetry

# Commercial fall detectors wait 30-90 s before escalating; the issue asks for an alert within
# 30 s of the impact. Classify once POST_S seconds after the impact are in, or after this
# long with whatever arrived (a cane lying still may stop streaming).
MAX_WAIT_S = 12.0
# A streaming cane sends a window every 2 s; this much silence means it stopped.
QUIET_S = 6.0
# The cane's own `fall_detected` is only a hint: it lowers the bar, it does not raise alone.
HINT_WINDOW_S = 10.0
_KEEP_S = PRE_S + POST_S + 4.0


class FallClassifier(Protocol):
    """A scikit-learn style binary classifier over `fall_features` vectors."""

    def predict_proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]: ...


@dataclass(slots=True)
class _Window:
    end_ms: int
    rate_hz: int
    samples: NDArray[np.float64]
    lat: float | None
    lon: float | None

    @property
    def start_ms(self) -> float:
        return self.end_ms - (len(self.samples) - 1) * 1000.0 / self.rate_hz


@dataclass(slots=True)
class _Candidate:
    impact_ms: int
    due_ms: int  # platform clock: MAX_WAIT_S after the impact, by its window's receive time
    decided: bool = False
    probability: float = 0.0


@dataclass(slots=True)
class _Cane:
    windows: deque[_Window] = field(default_factory=deque)
    candidates: list[_Candidate] = field(default_factory=list)
    hint_ms: int | None = None
    last_impact_ms: int = -(10**15)
    heard_ms: int = -(10**15)  # platform clock: the newest window's receive time


class FallDetector:
    """Buffers each cane's recent windows, finds impacts, and asks the model about each one."""

    def __init__(
        self, model: FallClassifier, threshold: float = 0.5, hint_threshold: float = 0.3
    ) -> None:
        self.model = model
        self.threshold = threshold
        self.hint_threshold = hint_threshold
        self._canes: dict[str, _Cane] = {}

    def on_window(self, msg: CaneTelemetry, received_ms: int | None = None) -> list[Finding]:
        """Take one accelerometer window; returns a trigger when a buffered impact is a fall.

        Args:
            msg: the window, its `ts` on the cane's corrected time base.
            received_ms: when it arrived, platform clock (default: `msg.ts`).
        """
        received_ms = msg.ts if received_ms is None else received_ms
        cane = self._canes.setdefault(msg.device_id, _Cane())
        cane.heard_ms = max(cane.heard_ms, received_ms)
        samples = np.asarray(msg.accel_g, dtype=np.float64).reshape(-1, 3)
        window = _Window(msg.ts, msg.rate_hz, samples, msg.lat, msg.lon)
        if any(w.end_ms == window.end_ms for w in cane.windows):
            return []
        # A QoS 1 redelivery or a gateway replay may bring a window late: keep device order.
        cane.windows.append(window)
        if len(cane.windows) > 1 and window.end_ms < cane.windows[-2].end_ms:
            cane.windows = deque(sorted(cane.windows, key=lambda w: w.end_ms))
        newest_ms = cane.windows[-1].end_ms
        while cane.windows and cane.windows[0].end_ms < newest_ms - _KEEP_S * 1000:
            cane.windows.popleft()
        mag = magnitude(samples)
        if float(mag.max()) >= IMPACT_G:
            step_ms = 1000.0 / msg.rate_hz
            for idx in impact_indices(mag, msg.rate_hz):
                t_ms = int(window.start_ms + idx * step_ms)
                if t_ms - cane.last_impact_ms >= 3000:
                    cane.last_impact_ms = t_ms
                    due_ms = received_ms - (msg.ts - t_ms) + int(MAX_WAIT_S * 1000)
                    cane.candidates.append(_Candidate(t_ms, due_ms))
        return self._decide(msg.device_id, cane, received_ms, final=False)

    def on_hint(self, device_id: str, ts: int) -> list[Finding]:
        """The cane's own `fall_detected`: re-check recent impacts with a lower bar."""
        cane = self._canes.setdefault(device_id, _Cane())
        cane.hint_ms = ts
        out: list[Finding] = []
        for cand in cane.candidates:
            hinted = abs(ts - cand.impact_ms) <= HINT_WINDOW_S * 1000
            if cand.decided and hinted and cand.probability >= self.hint_threshold:
                out.append(self._trigger(device_id, cane, cand, "cane hint"))
                cand.probability = -1.0
        return out

    def pending(self) -> bool:
        """Whether some impact still awaits classification."""
        return any(not c.decided for cane in self._canes.values() for c in cane.candidates)

    def tick(self, now_ms: int) -> list[Finding]:
        """Classify impacts whose cane went quiet, `MAX_WAIT_S` after the impact (platform ms)."""
        out: list[Finding] = []
        for device_id, cane in self._canes.items():
            if cane.candidates:
                out.extend(self._decide(device_id, cane, now_ms, final=True))
        return out

    def _decide(self, device_id: str, cane: _Cane, now_ms: int, *, final: bool) -> list[Finding]:
        """Classify the impacts that can be; `now_ms` is the platform clock."""
        out: list[Finding] = []
        newest_ms = cane.windows[-1].end_ms if cane.windows else cane.last_impact_ms
        for cand in cane.candidates:
            if cand.decided:
                continue
            complete = newest_ms >= cand.impact_ms + POST_S * 1000
            # Decide on partial data only once the cane has gone quiet: while it streams,
            # late windows are still on their way. Quiet is measured between receive times,
            # never against the device clock.
            quiet = now_ms - cane.heard_ms >= QUIET_S * 1000
            waited = final and quiet and now_ms >= cand.due_ms
            if not (complete or waited):
                continue
            cand.decided = True
            cand.probability = self._probability(cane, cand.impact_ms)
            hinted = (
                cane.hint_ms is not None
                and abs(cane.hint_ms - cand.impact_ms) <= HINT_WINDOW_S * 1000
            )
            bar = self.hint_threshold if hinted else self.threshold
            if cand.probability >= bar:
                out.append(self._trigger(device_id, cane, cand, "model"))
                cand.probability = -1.0
        horizon = now_ms - 60_000
        cane.candidates = [c for c in cane.candidates if not c.decided or c.due_ms > horizon]
        return out

    def _probability(self, cane: _Cane, impact_ms: int) -> float:
        samples, rate_hz, impact = _segment(cane.windows, impact_ms)
        if samples is None:
            return 0.0
        features = fall_features(samples, impact, rate_hz)
        return float(self.model.predict_proba(features.reshape(1, -1))[0, 1])

    def _trigger(self, device_id: str, cane: _Cane, cand: _Candidate, how: str) -> Trigger:
        samples, rate_hz, impact = _segment(cane.windows, cand.impact_ms)
        detail = ""
        if samples is not None:
            f = fall_features(samples, impact, rate_hz)
            detail = f"free fall {f[0]:.1f} g, impact {f[2]:.1f} g, still {f[6] * 100:.0f} %, "
        lat, lon = _position(cane.windows)
        reason = f"{detail}p={cand.probability:.2f} ({how})"
        return Trigger(
            AlertKind.FALL, Severity.CRITICAL, device_id, cand.impact_ms, reason, lat, lon
        )


def _position(windows: deque[_Window]) -> tuple[float | None, float | None]:
    for w in reversed(windows):
        if w.lat is not None and w.lon is not None:
            return w.lat, w.lon
    return None, None


def _segment(
    windows: deque[_Window], impact_ms: int
) -> tuple[NDArray[np.float64] | None, int, int]:
    """The contiguous samples around `impact_ms` and the impact's index in them."""
    chosen = [
        w
        for w in windows
        if w.start_ms - 4000 <= impact_ms + POST_S * 1000 and w.end_ms >= impact_ms - PRE_S * 1000
    ]
    if not chosen:
        return None, 50, 0
    rate_hz = chosen[-1].rate_hz
    chosen = [w for w in chosen if w.rate_hz == rate_hz]
    samples = np.concatenate([w.samples for w in chosen])
    # Index the impact within the window that holds it: consecutive windows may overlap or
    # leave gaps (the device stamps each one when it sends it).
    offset, impact = 0, 0
    for w in chosen:
        if w.start_ms - 500 / rate_hz <= impact_ms <= w.end_ms + 500 / rate_hz:
            impact = offset + round((impact_ms - w.start_ms) * rate_hz / 1000.0)
            break
        offset += len(w.samples)
    impact = min(max(impact, 0), len(samples) - 1)
    mag = magnitude(samples)
    lo, hi = max(0, impact - rate_hz // 5), min(len(samples), impact + rate_hz // 5 + 1)
    impact = lo + int(np.argmax(mag[lo:hi]))
    return samples, rate_hz, impact
