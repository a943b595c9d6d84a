"""Fall: impacts in a cane's accelerometer windows, classified by a trained model; long lies.

Impacts and windows are placed on the cane's corrected device time; whether the cane went
quiet, and when a long lie is due, is decided on the platform clock from receive times only,
so a cane whose clock is wrong by any amount is decided after the same delay.

A cane in a fall is either held (it follows the hand, and the model judges the impact) or let
go (it falls on its own, and hits the floor with a short unloading the model rightly finds
unlike a body). Either way, a cane that then lies still and flat and is not picked up within
`LONG_LIE_S` raises a possible fall of its own ("long lie"): people who fall often cannot
get up, and time on the floor is what harms them (Fleming & Brayne, BMJ 2008;337:a2227:
80 % of fallers aged 90+ could not get up alone, 30 % lay for an hour or more, with more
admissions and deaths). Commercial detectors wait for such stillness for 30-90 s before
calling (a wrist fall detector calls after about a minute without movement), so 60 s here.
Its severity is high, not critical: a dropped cane left on the floor is also what a seated
person does, so it is a possible fall to check, below a body impact the model recognised.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from alerting.fall_features import (
    IMPACT_G,
    POST_S,
    PRE_S,
    RECENTRE_AFTER_S,
    REFRACTORY_S,
    SAME_PEAK_S,
    accel_array,
    angle_deg,
    features_at,
    impact_indices,
    magnitude,
    mean_vector,
    recentre,
    smooth,
    std,
)
from alerting.model import Finding, Trigger
from gateway.contract import AlertKind, Severity
from gateway.messages import CaneTelemetry

# Commercial fall detectors wait 30-90 s before escalating; the alert must come within 30 s
# of the impact. Classify once the post-impact seconds are in, or after this long with
# whatever arrived (a cane lying still may stop streaming).
MAX_WAIT_S = 12.0
# A streaming cane sends a window every 2 s; this much silence means it stopped.
QUIET_S = 6.0
# The cane's own `fall_detected` is only a hint: it lowers the bar, it does not raise alone.
HINT_WINDOW_S = 10.0
# How far the hint lowers the bar (the model's operating point is 0.999). Measured on SisFall
# by `python -m evaluation.hint_bar` (subject-wise out-of-fold probabilities, 2,109 everyday
# and 1,500 fall recordings at 20/25/50/100 Hz, 11.2 h of everyday activity per rate) in the
# worst case, a hint on every impact: at 0.3, 44 everyday recording-rates alerted, 1.00 false
# alarms/h [0.73, 1.34], ten times the 1 per 10 h target, for 188 more falls found of 6,000
# (99.6 % vs 96.4 %); at 0.997, 3 alerted, 0.07/h [0.01, 0.19], for 61 more falls (97.5 %).
# 0.997 is the lowest bar whose worst case stays within the target (0.995: 0.11/h).
HINT_THRESHOLD = 0.997
# Long lie (see the module docstring). Settling: a dropped cane bounces and rolls for ~1-3 s.
LONG_LIE_S = 60.0
SETTLE_S = 3.0
# Still: magnitude spread under 0.05 g (the engine's cane-at-rest bound); flat: the shaft
# turned 60° or more from how it was held before the impact (a held cane stands within ~20°
# of vertical, a cane on the floor lies within ~20° of horizontal).
STILL_STD_G = 0.05
FLAT_TILT_DEG = 60.0
# At least this much of the cane lying still is needed to say it lies still.
LIE_EVIDENCE_S = 1.0
# A judged impact is kept this long after it was due, so that a later candidate on the same
# averaged peak (SAME_PEAK_S) or a late cane hint (HINT_WINDOW_S) finds it.
KEEP_DECIDED_S = 60.0
_KEEP_S = PRE_S + POST_S + RECENTRE_AFTER_S + 6.0


class FallClassifier(Protocol):
    """A scikit-learn style binary classifier over `alerting.fall_features` vectors."""

    def predict_proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]: ...


@dataclass(slots=True)
class _Window:
    end_ms: int
    rate_hz: int
    samples: NDArray[np.float64]
    lat: float | None
    lon: float | None
    start_ms: float = field(init=False)

    def __post_init__(self) -> None:
        self.start_ms = self.end_ms - (len(self.samples) - 1) * 1000.0 / self.rate_hz

    def first_after(self, t_ms: float) -> int:
        """Index of the first sample taken at or after `t_ms` (device time), >= 0."""
        return max(0, math.ceil((t_ms - self.start_ms) * self.rate_hz / 1000.0))


@dataclass(slots=True)
class _Candidate:
    impact_ms: int
    due_ms: int  # platform clock: MAX_WAIT_S after the impact, by its window's receive time
    decided: bool = False
    probability: float = 0.0
    peak_ms: int | None = None  # device time of the averaged peak it was judged on


@dataclass(slots=True)
class _LongLie:
    """A cane that hit something hard: watched until it is picked up or LONG_LIE_S pass."""

    impact_ms: int
    impact_g: float
    due_ms: int  # platform clock: LONG_LIE_S after the impact, by its window's receive time
    held: NDArray[np.float64] | None  # mean acceleration before the impact: how it was held
    still_s: float = 0.0  # how long it was seen lying still and flat after settling
    picked_up: bool = False


@dataclass(slots=True)
class _Cane:
    windows: deque[_Window] = field(default_factory=deque)
    candidates: list[_Candidate] = field(default_factory=list)
    hint_ms: int | None = None
    last_impact_ms: int = -(10**15)
    heard_ms: int = -(10**15)  # platform clock: the newest window's receive time
    lie: _LongLie | None = None
    decided_due_ms: int = 2**62  # the earliest `due_ms` of the judged candidates kept


class FallDetector:
    """Buffers each cane's recent windows, finds impacts, asks the model, watches long lies."""

    def __init__(
        self,
        model: FallClassifier,
        threshold: float = 0.5,
        hint_threshold: float = HINT_THRESHOLD,
    ) -> None:
        self.model = model
        self.threshold = threshold
        self.hint_threshold = hint_threshold
        self._canes: dict[str, _Cane] = {}
        # What `tick` visits: canes with an impact not classified yet; canes with a long lie.
        self._undecided: dict[str, _Cane] = {}
        self._lying: dict[str, _Cane] = {}

    def on_window(
        self,
        msg: CaneTelemetry,
        received_ms: int | None = None,
        samples: NDArray[np.float64] | None = None,
        mag: NDArray[np.float64] | None = None,
    ) -> list[Finding]:
        """Take one accelerometer window; returns a trigger when a buffered impact is a fall.

        Args:
            msg: the window, its `ts` on the cane's corrected time base.
            received_ms: when it arrived, platform clock (default: `msg.ts`).
            samples: `msg.accel_g` as `accel_array` gives it, when the caller has it already.
            mag: `magnitude(samples)`, when the caller has it already.
        """
        received_ms = msg.ts if received_ms is None else received_ms
        cane = self._canes.setdefault(msg.device_id, _Cane())
        cane.heard_ms = max(cane.heard_ms, received_ms)
        if samples is None:
            samples = accel_array(msg.accel_g)
        if mag is None:
            mag = magnitude(samples)
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
        if cane.lie is not None:
            _watch(cane.lie, window, mag)
        if float(mag.max()) >= IMPACT_G:
            step_ms = 1000.0 / msg.rate_hz
            for idx in impact_indices(mag, msg.rate_hz):
                t_ms = int(window.start_ms + idx * step_ms)
                if t_ms - cane.last_impact_ms >= REFRACTORY_S * 1000:
                    cane.last_impact_ms = t_ms
                    base_ms = received_ms - (msg.ts - t_ms)
                    cane.candidates.append(_Candidate(t_ms, base_ms + int(MAX_WAIT_S * 1000)))
                    lie = cane.lie
                    if lie is not None and not lie.picked_up and mag[idx] <= lie.impact_g:
                        continue  # a smaller bump of a cane already watched on the floor
                    cane.lie = _LongLie(
                        t_ms,
                        float(mag[idx]),
                        base_ms + int(LONG_LIE_S * 1000),
                        _held(cane.windows, t_ms),
                    )
                    _watch(cane.lie, window, mag)
        if cane.lie is not None:
            self._lying[msg.device_id] = cane
        if not cane.candidates:
            return []
        out = self._decide(msg.device_id, cane, received_ms, final=False)
        if any(not c.decided for c in cane.candidates):
            self._undecided[msg.device_id] = cane
        return out

    def on_hint(self, device_id: str, ts: int, now_ms: int | None = None) -> list[Finding]:
        """The cane's own `fall_detected`: re-check recent impacts with a lower bar.

        Args:
            device_id: the cane.
            ts: the hint's time, the cane's corrected time base.
            now_ms: when it arrived, platform clock: impacts judged and due more than
                `KEEP_DECIDED_S` before it are forgotten first.
        """
        cane = self._canes.setdefault(device_id, _Cane())
        cane.hint_ms = ts
        if now_ms is not None:
            _forget_decided(cane, now_ms)
        out: list[Finding] = []
        for cand in cane.candidates:
            hinted = abs(ts - cand.impact_ms) <= HINT_WINDOW_S * 1000
            if cand.decided and hinted and cand.probability >= self.hint_threshold:
                out.append(self._trigger(device_id, cane, cand, "cane hint"))
                cand.probability = -1.0
        return out

    def pending(self) -> bool:
        """Whether some impact still awaits classification (long lies not counted)."""
        return any(not c.decided for cane in self._undecided.values() for c in cane.candidates)

    def tick(self, now_ms: int) -> list[Finding]:
        """Classify impacts of canes gone quiet; raise long lies that are due (platform ms).

        Visits only the canes with an impact not classified yet or a long lie watched, not
        every cane (at a morning peak most walking canes hold only judged impacts).
        """
        out: list[Finding] = []
        done: list[str] = []
        for device_id, cane in self._undecided.items():
            # An impact whose samples are all in was judged when its last window came: only
            # a cane gone quiet has one to judge now.
            if now_ms - cane.heard_ms < QUIET_S * 1000:
                continue
            out.extend(self._decide(device_id, cane, now_ms, final=True))
            if all(c.decided for c in cane.candidates):
                done.append(device_id)
        for device_id in done:
            del self._undecided[device_id]
        done = []
        for device_id, cane in self._lying.items():
            lie = cane.lie
            if lie is not None and now_ms >= lie.due_ms:
                cane.lie = None
                if not lie.picked_up and lie.still_s >= LIE_EVIDENCE_S:
                    out.append(self._long_lie(device_id, cane, lie))
            if cane.lie is None:
                done.append(device_id)
        for device_id in done:
            del self._lying[device_id]
        return out

    def _decide(self, device_id: str, cane: _Cane, now_ms: int, *, final: bool) -> list[Finding]:
        """Classify the impacts that can be; `now_ms` is the platform clock."""
        _forget_decided(cane, now_ms)
        out: list[Finding] = []
        newest_ms = cane.windows[-1].end_ms if cane.windows else cane.last_impact_ms
        for cand in cane.candidates:
            if cand.decided:
                continue
            complete = newest_ms >= cand.impact_ms + (POST_S + RECENTRE_AFTER_S) * 1000
            # Decide on partial data only once the cane has gone quiet: while it streams,
            # late windows are still on their way. Quiet is measured between receive times,
            # never against the device clock.
            quiet = now_ms - cane.heard_ms >= QUIET_S * 1000
            waited = final and quiet and now_ms >= cand.due_ms
            if not (complete or waited):
                continue
            cand.decided = True
            cane.decided_due_ms = min(cane.decided_due_ms, cand.due_ms)
            cand.probability, cand.peak_ms = self._probability(cane, cand.impact_ms)
            if cand.peak_ms is not None and any(
                c is not cand
                and c.peak_ms is not None
                and abs(c.peak_ms - cand.peak_ms) <= SAME_PEAK_S * 1000
                for c in cane.candidates
            ):
                cand.probability = -1.0  # the same peak as a candidate judged before
                continue
            hinted = (
                cane.hint_ms is not None
                and abs(cane.hint_ms - cand.impact_ms) <= HINT_WINDOW_S * 1000
            )
            bar = self.hint_threshold if hinted else self.threshold
            if cand.probability >= bar:
                out.append(self._trigger(device_id, cane, cand, "model"))
                cand.probability = -1.0
        return out

    def _features(
        self, cane: _Cane, impact_ms: int
    ) -> tuple[NDArray[np.float64] | None, int | None]:
        """Features and device time of the largest averaged peak near `impact_ms`.

        Features are None when that peak stays below IMPACT_G.
        """
        samples, rate_hz, impact = _segment(cane.windows, impact_ms)
        if samples is None:
            return None, None
        sm = smooth(magnitude(samples), rate_hz)
        peak = recentre(sm, impact, rate_hz)
        peak_ms = impact_ms + round((peak - impact) * 1000 / rate_hz)
        if sm[peak] < IMPACT_G:
            return None, peak_ms
        return features_at(samples, sm, peak, rate_hz), peak_ms

    def _probability(self, cane: _Cane, impact_ms: int) -> tuple[float, int | None]:
        features, peak_ms = self._features(cane, impact_ms)
        if features is None:
            return 0.0, peak_ms
        return float(self.model.predict_proba(features.reshape(1, -1))[0, 1]), peak_ms

    def _trigger(self, device_id: str, cane: _Cane, cand: _Candidate, how: str) -> Trigger:
        f, peak_ms = self._features(cane, cand.impact_ms)
        detail = ""
        if f is not None:
            detail = f"impact {f[0]:.1f} g, posture change {f[9]:.0f}°, rest {f[8] * 100:.0f} %, "
        lat, lon = _position(cane.windows)
        reason = f"{detail}p={cand.probability:.2f} ({how})"
        event_ms = cand.impact_ms if peak_ms is None else peak_ms
        if cane.lie is not None and cane.lie.impact_ms <= event_ms + 3000:
            cane.lie = None  # raised as a fall already: no second alert for the same impact
        return Trigger(AlertKind.FALL, Severity.CRITICAL, device_id, event_ms, reason, lat, lon)

    def _long_lie(self, device_id: str, cane: _Cane, lie: _LongLie) -> Trigger:
        lat, lon = _position(cane.windows)
        reason = (
            f"possible fall (long lie): cane hit the floor at {lie.impact_g:.1f} g and lay "
            f"still and flat, not picked up for {LONG_LIE_S:.0f} s"
        )
        return Trigger(AlertKind.FALL, Severity.HIGH, device_id, lie.impact_ms, reason, lat, lon)


def _forget_decided(cane: _Cane, now_ms: int) -> None:
    """Drop judged impacts due more than `KEEP_DECIDED_S` before `now_ms` (platform clock)."""
    horizon = now_ms - int(KEEP_DECIDED_S * 1000)
    if cane.decided_due_ms <= horizon:
        cane.candidates = [c for c in cane.candidates if not c.decided or c.due_ms > horizon]
        cane.decided_due_ms = min((c.due_ms for c in cane.candidates if c.decided), default=2**62)


def _held(windows: deque[_Window], impact_ms: int) -> NDArray[np.float64] | None:
    """Mean acceleration over the PRE_S before an impact: the direction the cane was held."""
    parts = [
        w.samples[
            max(0, math.ceil((impact_ms - PRE_S * 1000 - w.start_ms) * w.rate_hz / 1000)) : max(
                0, math.floor((impact_ms - 500 - w.start_ms) * w.rate_hz / 1000) + 1
            )
        ]
        for w in windows
    ]
    held = [p for p in parts if len(p)]
    return mean_vector(np.concatenate(held)) if held else None


def _watch(lie: _LongLie, window: _Window, mag: NDArray[np.float64]) -> None:
    """Update a long-lie watch with a window (`mag`: its magnitudes): still and flat, or
    picked up."""
    if lie.picked_up:
        return
    first = window.first_after(lie.impact_ms + SETTLE_S * 1000)
    part = window.samples[first:]
    if len(part) < 2:
        return
    moving = std(mag[first:]) > STILL_STD_G
    flat = lie.held is not None and angle_deg(lie.held, mean_vector(part)) >= FLAT_TILT_DEG
    if moving or not flat:
        lie.picked_up = True
        return
    lie.still_s += len(part) / window.rate_hz


def _position(windows: deque[_Window]) -> tuple[float | None, float | None]:
    for w in reversed(windows):
        if w.lat is not None and w.lon is not None:
            return w.lat, w.lon
    return None, None


def _segment(
    windows: deque[_Window], impact_ms: int
) -> tuple[NDArray[np.float64] | None, int, int]:
    """The contiguous samples around `impact_ms` and the impact's index in them."""
    before_ms = (PRE_S + 1.0) * 1000
    after_ms = (POST_S + RECENTRE_AFTER_S + 1.0) * 1000
    chosen = [
        w
        for w in windows
        if w.start_ms <= impact_ms + after_ms and w.end_ms >= impact_ms - before_ms
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
    return samples, rate_hz, min(max(impact, 0), len(samples) - 1)
