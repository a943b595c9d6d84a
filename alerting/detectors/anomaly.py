"""Anomaly: heart rate or activity unusual for this elder (IsolationForest per elder)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from sklearn.ensemble import IsolationForest

from alerting.geo import local_hour
from alerting.model import Finding, Trigger
from gateway.contract import AlertKind, Severity

# Extreme heart rates raise at high severity whatever the model says: below 40 bpm awake is
# significant bradycardia (2018 ACC/AHA/HRS bradycardia guideline); above 150 bpm at an
# elder's activity level is well beyond the age-predicted maximum band for sustained effort.
EXTREME_LOW_BPM = 40
EXTREME_HIGH_BPM = 150
DEFAULT_MIN_SAMPLES = 200
DEFAULT_REFIT_EVERY = 1000
# Expected share of unusual readings (IsolationForest contamination).
DEFAULT_CONTAMINATION = 0.005
# At most one anomaly trigger per elder per half hour: a repeat refreshes the active alert.
QUIET_MS = 30 * 60 * 1000
# Beyond the forest's own outlier cut: well outside this elder's usual cloud.
SCORE_MARGIN = 0.08
# Heart rate more than 6 robust standard deviations from the elder's median.
MAX_ROBUST_Z = 6.0
_HISTORY = 3000


@dataclass(slots=True)
class _Elder:
    rows: deque[tuple[float, float, float, float]] = field(
        default_factory=lambda: deque(maxlen=_HISTORY)
    )
    model: IsolationForest | None = None
    since_fit: int = 0
    last_trigger_ms: int = -(10**15)


def _robust_z(elder: _Elder, hr_bpm: float) -> float:
    hrs = np.fromiter((r[0] for r in elder.rows), dtype=np.float64)
    median = float(np.median(hrs))
    mad = max(float(np.median(np.abs(hrs - median))), 2.0)
    # 1.4826 x MAD estimates the standard deviation of normally distributed data.
    return abs(hr_bpm - median) / (1.4826 * mad)


def _row(ts: int, hr_bpm: float, steps: float) -> tuple[float, float, float, float]:
    angle = 2 * math.pi * local_hour(ts) / 24
    return (hr_bpm, math.log1p(max(0.0, steps)), math.sin(angle), math.cos(angle))


class AnomalyDetector:
    """Learns each elder's usual (heart rate, activity, hour) and flags outliers."""

    def __init__(
        self,
        min_samples: int = DEFAULT_MIN_SAMPLES,
        refit_every: int = DEFAULT_REFIT_EVERY,
        contamination: float = DEFAULT_CONTAMINATION,
        seed: int = 0,
    ) -> None:
        self.min_samples = min_samples
        self.refit_every = refit_every
        self.contamination = contamination
        self.seed = seed
        self._elders: dict[str, _Elder] = {}

    def learn(self, elder_id: str, ts: int, hr_bpm: float, steps: float) -> None:
        """Add a stored historical sample (baseline) without checking it."""
        self._elders.setdefault(elder_id, _Elder()).rows.append(_row(ts, hr_bpm, steps))

    def on_sample(
        self, elder_id: str, device_id: str, ts: int, hr_bpm: float, steps: float
    ) -> list[Finding]:
        """Check one live sample against the elder's model, then learn from it."""
        elder = self._elders.setdefault(elder_id, _Elder())
        row = _row(ts, hr_bpm, steps)
        out: list[Finding] = []
        extreme = hr_bpm < EXTREME_LOW_BPM or hr_bpm > EXTREME_HIGH_BPM
        unusual = extreme
        if not extreme and elder.model is not None:
            score = float(elder.model.decision_function(np.array([row]))[0])
            # IsolationForest does not extrapolate well beyond the range it saw, so a
            # robust z-score of the heart rate backs it up.
            unusual = score < -SCORE_MARGIN or _robust_z(elder, hr_bpm) > MAX_ROBUST_Z
        if unusual and ts - elder.last_trigger_ms >= QUIET_MS:
            elder.last_trigger_ms = ts
            severity = Severity.HIGH if extreme else Severity.LOW
            what = (
                "heart rate outside the safe range" if extreme else "unusual heart rate or activity"
            )
            out.append(Trigger(AlertKind.ANOMALY, severity, device_id, ts, what))
        elder.rows.append(row)
        elder.since_fit += 1
        if len(elder.rows) >= self.min_samples and (
            elder.model is None or elder.since_fit >= self.refit_every
        ):
            self._fit(elder)
        return out

    def _fit(self, elder: _Elder) -> None:
        model = IsolationForest(
            n_estimators=50, contamination=self.contamination, random_state=self.seed
        )
        model.fit(np.array(elder.rows))
        elder.model = model
        elder.since_fit = 0
