"""Smoke-sensor physics: a growing fire versus cooking and shower-steam nuisances (pure).

Obscuration is in dB/m, the EN 54-7 measure; alarm thresholds lie in 0.05–0.2 dB/m.
A flaming fire grows roughly as t² (the "t-squared" design fire of NFPA 72 / BS 7974),
so its smoke and heat keep rising until it is put out. Cooking fumes and shower steam
rise, hold for a while and then decay; only a few per cent of cooking events reach an
alarm threshold, steam more often (data README: 1–11 % of cooking events; steam is a
large share of nuisance alarms). How long a nuisance stays above an alarm threshold was not
found in the sources at hand, so the rise and hold times below are unfitted modelling
choices (docs/calibration.md, "Smoke nuisances"); they are not shortened to suit a detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SOURCE_KINDS = ("fire", "cooking", "steam")
ALARM_THRESHOLD_DB_M = 0.05  # EN 54-7 lower bound; each sensor draws its own >= this.
FAST_REPORT_DB_M = 0.02  # contract §1: report every 5 s above this.
_MAX_FIRE_DB_M = 3.0
_MAX_FIRE_RISE_C = 120.0


@dataclass(frozen=True, slots=True)
class SmokeSource:
    """One smoke-producing episode near a sensor.

    Attributes:
        kind: fire, cooking or steam.
        start_ms: when it begins (device clock).
        rise_s: time to reach `peak_db_m` (fire: time to 0.05 dB/m).
        hold_s: how long it stays at the peak (fire: time until put out).
        decay_s: exponential decay time constant afterwards.
        peak_db_m: peak obscuration (fire: the level reached at `rise_s`).
        heat_c: temperature rise at the peak (fire: at `rise_s`).
    """

    kind: str
    start_ms: int
    rise_s: float
    hold_s: float
    decay_s: float
    peak_db_m: float
    heat_c: float

    @property
    def end_ms(self) -> int:
        """When its contribution has decayed below noise (5 time constants)."""
        return self.start_ms + int((self.rise_s + self.hold_s + 5 * self.decay_s) * 1000)

    def level(self, t_ms: int) -> tuple[float, float]:
        """Return (obscuration dB/m, temperature rise °C) it adds at `t_ms`."""
        t_s = (t_ms - self.start_ms) / 1000
        if t_s <= 0:
            return 0.0, 0.0
        if self.kind == "fire":
            return self._fire(t_s)
        if t_s < self.rise_s:
            shape = (1 - math.cos(math.pi * t_s / self.rise_s)) / 2
        elif t_s < self.rise_s + self.hold_s:
            shape = 1.0
        else:
            shape = math.exp(-(t_s - self.rise_s - self.hold_s) / self.decay_s)
        return self.peak_db_m * shape, self.heat_c * shape

    def _fire(self, t_s: float) -> tuple[float, float]:
        burn_s = min(t_s, self.rise_s + self.hold_s)
        growth = (burn_s / self.rise_s) ** 2
        smoke = min(_MAX_FIRE_DB_M, self.peak_db_m * growth)
        heat = min(_MAX_FIRE_RISE_C, self.heat_c * growth)
        if t_s > self.rise_s + self.hold_s:
            fade = math.exp(-(t_s - self.rise_s - self.hold_s) / self.decay_s)
            smoke, heat = smoke * fade, heat * fade
        return smoke, heat


def make_source(kind: str, start_ms: int, rng: np.random.Generator) -> SmokeSource:
    """Draw a plausible fire, cooking or steam episode starting at `start_ms`.

    Raises:
        ValueError: for an unknown kind.
    """
    if kind == "fire":
        # Fast to slow t² fires reach a ceiling detector's 0.05 dB/m in about 1–4 min.
        return SmokeSource(
            kind,
            start_ms,
            rise_s=float(rng.uniform(60, 240)),
            hold_s=float(rng.uniform(600, 1500)),
            decay_s=300.0,
            peak_db_m=0.05,
            heat_c=float(rng.uniform(1.0, 3.0)),
        )
    if kind == "cooking":
        # Median peak 0.012 dB/m, sigma 0.87: about 5 % of events exceed 0.05 dB/m.
        return SmokeSource(
            kind,
            start_ms,
            rise_s=float(rng.uniform(120, 600)),
            hold_s=float(rng.uniform(60, 600)),
            decay_s=float(rng.uniform(120, 300)),
            peak_db_m=float(rng.lognormal(math.log(0.012), 0.87)),
            heat_c=float(rng.uniform(0.5, 3.0)),
        )
    if kind == "steam":
        # Steam scatters light strongly: median 0.025 dB/m, about a quarter exceed 0.05.
        return SmokeSource(
            kind,
            start_ms,
            rise_s=float(rng.uniform(60, 180)),
            hold_s=float(rng.uniform(300, 900)),
            decay_s=float(rng.uniform(120, 300)),
            peak_db_m=float(rng.lognormal(math.log(0.025), 1.0)),
            heat_c=float(rng.uniform(1.0, 4.0)),
        )
    raise ValueError(f"unknown smoke source {kind!r}; one of {', '.join(SOURCE_KINDS)}")


def ambient_temp_c(local_hour: float, offset_c: float = 0.0) -> float:
    """Indoor temperature over the day: warmest mid-afternoon."""
    return 22.0 + offset_c + 1.5 * math.sin(2 * math.pi * (local_hour - 9.0) / 24.0)


def reading(
    t_ms: int, sources: list[SmokeSource], *, base_db_m: float, ambient_c: float
) -> tuple[float, float]:
    """Return (smoke_db_m, temp_c) a sensor measures at `t_ms` (before sensor noise)."""
    smoke, temp = base_db_m, ambient_c
    for src in sources:
        s, h = src.level(t_ms)
        smoke += s
        temp += h
    return smoke, temp
