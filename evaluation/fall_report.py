"""Recording-level fall figures with confidence intervals, and the table that prints them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import chi2

from evaluation.fall_data import Candidates
from evaluation.sisfall import SisFall

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (Wilson, JASA 1927); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def poisson_rate(k: int, hours: float) -> tuple[float, float]:
    """Exact (Garwood 1936) 95 % interval of an event rate per hour from k events."""
    if hours <= 0:
        return 0.0, math.inf
    lo = 0.0 if k == 0 else float(chi2.ppf(0.025, 2 * k)) / 2
    hi = float(chi2.ppf(0.975, 2 * k + 2)) / 2
    return lo / hours, hi / hours


@dataclass(frozen=True, slots=True)
class Figures:
    """Recording-level outcome of one group of recordings at one rate."""

    falls: int
    detected: int
    adls: int
    adls_alerted: int
    false_alarms: int
    adl_hours: float

    @property
    def sensitivity(self) -> float:
        """Share of fall recordings whose fall was raised."""
        return self.detected / self.falls if self.falls else math.nan

    @property
    def specificity(self) -> float:
        """Share of everyday recordings with no alert at all."""
        return 1 - self.adls_alerted / self.adls if self.adls else math.nan

    @property
    def false_alarms_per_h(self) -> float:
        """Alerts per hour of everyday activity."""
        return self.false_alarms / self.adl_hours if self.adl_hours else math.nan

    def as_dict(self) -> dict[str, object]:
        """Counts, rates and their 95 % intervals (JSON-ready)."""
        out: dict[str, object] = asdict(self)
        if self.falls:
            out["sensitivity"] = [self.sensitivity, *wilson(self.detected, self.falls)]
        if self.adls:
            spec = wilson(self.adls - self.adls_alerted, self.adls)
            out["specificity"] = [self.specificity, *spec]
            rate = poisson_rate(self.false_alarms, self.adl_hours)
            out["false_alarms_per_h"] = [self.false_alarms_per_h, *rate]
        return out


def figures(
    data: SisFall, cands: Candidates, prob: NDArray[np.float64], threshold: float, rate_hz: int
) -> dict[int, tuple[bool, int]]:
    """Per recording at `rate_hz`: (fall raised, number of false alarms)."""
    out: dict[int, tuple[bool, int]] = {}
    at_rate = cands.rate_hz == rate_hz
    fired = prob >= threshold
    for number in np.unique(cands.recording[at_rate]):
        rows = at_rate & (cands.recording == number)
        if data.recordings[int(number)].is_fall:
            out[int(number)] = (bool(np.any(fired[rows] & (cands.label[rows] == 1))), 0)
        else:
            out[int(number)] = (False, int(np.sum(fired[rows])))
    return out


def summarise(
    data: SisFall, numbers: Sequence[int], outcome: dict[int, tuple[bool, int]]
) -> Figures:
    """Figures of the recordings `numbers` (a recording with no candidate raised nothing)."""
    falls = detected = adls = alerted = false = 0
    hours = 0.0
    for number in numbers:
        rec = data.recordings[number]
        hit, n_false = outcome.get(number, (False, 0))
        if rec.is_fall:
            falls += 1
            detected += int(hit)
        else:
            adls += 1
            alerted += int(n_false > 0)
            false += n_false
            hours += rec.duration_s / 3600
    return Figures(falls, detected, adls, alerted, false, hours)


def _pct(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{100 * k / n:5.1f} [{100 * lo:4.1f}-{100 * hi:5.1f}]" if n else "-"


def cell(f: Figures) -> str:
    """One table cell: sensitivity for falls, alerts/recordings and FA/h for everyday codes."""
    if f.falls:
        return f"{f.detected:3d}/{f.falls:<3d} {_pct(f.detected, f.falls)}"
    return f"{f.false_alarms:3d} al {f.adls_alerted:3d}/{f.adls:<3d} rec"


def table(
    data: SisFall, per_rate: dict[int, dict[int, tuple[bool, int]]], thresholds: Sequence[float]
) -> str:
    """The printed table: one row per activity code, one column per rate, then the totals."""
    rates = sorted(per_rate)
    codes = sorted({r.code for r in data.recordings}, key=lambda c: (c[0] != "F", c))
    by_code = {c: [r.number for r in data.recordings if r.code == c] for c in codes}
    width = 30
    head = f"{'code':5s} {'activity':34s} " + " ".join(f"{f'{r} Hz':>{width}s}" for r in rates)
    bars = ", ".join(f"{t:g}" for t in thresholds)
    lines = [f"fall detection, subject-wise cross-validation (bars per fold: {bars})", head]
    for code in codes:
        activity = next(r.activity for r in data.recordings if r.code == code)[:34]
        cells = [cell(summarise(data, by_code[code], per_rate[r])) for r in rates]
        lines.append(f"{code:5s} {activity:34s} " + " ".join(f"{c:>{width}s}" for c in cells))
    everything = [r.number for r in data.recordings]
    lines.append("")
    for name in ("sensitivity %", "specificity %", "false alarms / h", "false alarms / 10 h"):
        cells = []
        for r in rates:
            f = summarise(data, everything, per_rate[r])
            if name.startswith("sens"):
                cells.append(_pct(f.detected, f.falls))
            elif name.startswith("spec"):
                cells.append(_pct(f.adls - f.adls_alerted, f.adls))
            else:
                scale = 10 if "10 h" in name else 1
                lo, hi = poisson_rate(f.false_alarms, f.adl_hours)
                cells.append(
                    f"{scale * f.false_alarms_per_h:6.3f} [{scale * lo:.3f}-{scale * hi:.3f}]"
                )
        lines.append(f"{name:40s} " + " ".join(f"{c:>{width}s}" for c in cells))
    f0 = summarise(data, everything, per_rate[rates[0]])
    lines.append(
        f"({f0.falls} fall and {f0.adls} everyday recordings, {f0.adl_hours:.2f} h of everyday "
        "activity per rate; 95 % intervals: Wilson for shares, exact Poisson for rates)"
    )
    return "\n".join(lines)
