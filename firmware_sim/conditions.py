"""Conditions no single reading shows: an elder immobile at home for hours, an arrhythmia (pure).

Both are drawn from a description of the condition, never from the platform's detectors:

- Immobility: an elder who is unwell (or cannot get up) stays in a bed or a chair for hours in
  the daytime, still wearing the band; the band counts no steps and the cane lies still. How
  long is not known from data here: the duration is drawn log-uniform over 2-12 h ("hours", as
  telecare activity monitoring describes the condition), so short and long episodes both occur.
- Arrhythmia: atrial fibrillation with rapid ventricular response (irregular ventricular rate
  above 100 bpm, typically 110-160 bpm untreated; 2014 AHA/ACC/HRS atrial fibrillation
  guideline), or complete heart block with a junctional (40-60 bpm) or ventricular (20-40 bpm,
  mostly 25-40) escape rhythm (standard ECG texts, e.g. Goldberger's Clinical
  Electrocardiography). Paroxysmal atrial fibrillation episodes last minutes to hours (usually
  under 2 days: NICE HTG553); a heart block lasts until treated. AF is the most common
  sustained arrhythmia, so it is drawn more often (a modelling choice, 70 %).

Rates: neither condition's incidence per elder-day is known from the data here; the defaults
below are modelling choices, set per run by the simulator's options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Spontaneous episodes per elder-day (defaults of `--inactivity-per-day`, `--anomaly-per-day`).
INACTIVITY_PER_DAY = 0.002
ANOMALY_PER_DAY = 0.002
IMMOBILE_H = (2.0, 12.0)
ARRHYTHMIA_KINDS = ("af_rvr", "heart_block")
_AF_SHARE = 0.7
_AF_RATE_BPM = (110.0, 160.0)
# "Irregularly irregular": beat-to-beat spread of the rate a band averages over a few seconds.
_AF_SPREAD_BPM = 12.0
_JUNCTIONAL_BPM = (40.0, 60.0)
_VENTRICULAR_BPM = (25.0, 40.0)
_BLOCK_SPREAD_BPM = 1.5
_AF_H = (1 / 3, 6.0)
_BLOCK_H = (1.0, 8.0)
HOUR_MS = 3_600_000


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def draw_immobility_ms(rng: np.random.Generator, hours: float | None = None) -> int:
    """How long an immobility episode lasts, ms (`hours` forces it)."""
    return int((hours if hours is not None else _log_uniform(rng, *IMMOBILE_H)) * HOUR_MS)


@dataclass(frozen=True, slots=True)
class Arrhythmia:
    """One arrhythmia episode as a wrist heart-rate sensor sees it.

    Attributes:
        kind: af_rvr or heart_block.
        start_ms: onset (device clock).
        end_ms: when the rhythm returns to the elder's usual one.
        rate_bpm: mean ventricular rate during the episode.
        spread_bpm: standard deviation of one reading around it.
    """

    kind: str
    start_ms: int
    end_ms: int
    rate_bpm: float
    spread_bpm: float

    def active(self, t_ms: int) -> bool:
        """Whether the episode is on at `t_ms`."""
        return self.start_ms <= t_ms < self.end_ms

    def heart_rate(self, rng: np.random.Generator) -> int:
        """One reading during the episode, bpm."""
        return max(15, round(self.rate_bpm + float(rng.normal(0, self.spread_bpm))))

    @property
    def detail(self) -> str:
        """The ground-truth `detail` text."""
        hours = (self.end_ms - self.start_ms) / HOUR_MS
        return f"rhythm={self.kind} rate_bpm={self.rate_bpm:.0f} hours={hours:.2f}"


def draw_arrhythmia(rng: np.random.Generator, start_ms: int, kind: str | None = None) -> Arrhythmia:
    """Draw an arrhythmia episode starting at `start_ms` (`kind` forces its rhythm).

    Raises:
        ValueError: for an unknown kind.
    """
    if kind is None:
        kind = "af_rvr" if rng.random() < _AF_SHARE else "heart_block"
    if kind == "af_rvr":
        rate, spread, hours = float(rng.uniform(*_AF_RATE_BPM)), _AF_SPREAD_BPM, _AF_H
    elif kind == "heart_block":
        escape = _JUNCTIONAL_BPM if rng.random() < 0.5 else _VENTRICULAR_BPM
        rate, spread, hours = float(rng.uniform(*escape)), _BLOCK_SPREAD_BPM, _BLOCK_H
    else:
        raise ValueError(f"unknown rhythm {kind!r}; one of {', '.join(ARRHYTHMIA_KINDS)}")
    end_ms = start_ms + int(_log_uniform(rng, *hours) * HOUR_MS)
    return Arrhythmia(kind, start_ms, end_ms, rate, spread)
