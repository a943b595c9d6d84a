"""Anomaly: a heart rate unusual for this elder at this level of activity.

Each elder's baseline is the distribution of their own heart rate at each walking cadence,
kept as integer histograms: for every cadence band (steps per minute over the interval the
reading's steps cover, since the band's previous message, `CADENCE_BANDS_SPM`) a count per
beat per minute from
`EXTREME_LOW_BPM` to `EXTREME_HIGH_BPM`. A reading is judged against the readings the elder
made at the same cadence (median and median absolute deviation, read off the histogram), or,
just after the cadence changed, between the cadences of the last `HR_LAG_MS` (the heart
follows effort with a lag); so a racing heart while sitting still or a slow one while walking
briskly stands out even when the same rate is usual for the elder at another cadence. Two
unusual readings in a row (`PERSIST`) raise a low-severity alert. Readings outside the fixed
safe range raise at high severity at once whatever the baseline says, and are not learnt, nor
are the readings around them (`EXTREME_NEAR_MS`).

A baseline takes `BASELINE_BYTES` (1,554 bytes) of histograms per elder whatever its age
(about 3.2 KiB with its Python objects, `bench/bench_detector_state.py`), where the per-elder
isolation forest it replaced took a 288 KiB forest slot plus up to 39 KiB of history. Judging
a reading is a few comparisons (about 6 us); a cadence band's median and MAD are recomputed
from its histogram once it has learnt 1/16 more readings (`_STALE_SHARE`).

Thresholds were tuned on simulated band traffic with seed 5001 and are reported on seeds
7001-7003 (`python -m evaluation.anomaly_replay`); heart rates in the simulator follow
published physiology (`firmware_sim.routine`, `firmware_sim.conditions`), but no recorded
wrist heart-rate data was available to check either against.

With `defer` set, `on_sample` only queues; `flush` then judges everything queued, in arrival
order, exactly as if each reading had been judged on arrival, and returns the triggers, each
stamped (with `stamp`) with the identity of the message that carried the reading.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from alerting.model import Finding, Trigger
from gateway.contract import AlertKind, Severity

# Extreme heart rates raise at high severity whatever the baseline says: below 40 bpm awake
# is significant bradycardia (2018 ACC/AHA/HRS bradycardia guideline); above 150 bpm at an
# elder's activity level is well beyond the age-predicted maximum band for sustained effort.
EXTREME_LOW_BPM = 40
EXTREME_HIGH_BPM = 150
# Cadence bands, steps per minute, lower edges after "still" (0): incidental movement 1-19,
# sporadic 20-39, purposeful 40-59, slow 60-79, medium 80-99 and brisk walking 100+
# (Tudor-Locke & Rowe 2012, "Using cadence to study free-living ambulatory behaviour",
# Sports Med 42(5)). Seven bands.
CADENCE_BANDS_SPM = (1.0, 20.0, 40.0, 60.0, 80.0, 100.0)
# A cadence needs the interval the steps cover (since the band's previous message, contract
# §1); an unknown one (a message lost in between), a longer or a non-positive one (a gap, a
# clock that jumped, a gateway replaying its buffer) gives no cadence: the reading is judged
# against the highest and lowest known bands and not learnt.
MAX_INTERVAL_MS = 30 * 60 * 1000
# Heart rate follows a change of effort with a time constant of about a minute (the
# simulator's, firmware_sim.routine; a modelling choice): a reading is judged against every
# cadence of the last three time constants, by which 95 % of the change has come.
HR_LAG_MS = 3 * 60 * 1000
# Readings the elder must have in all before any judging, and in a cadence band before
# that band judges (tuned: python -m evaluation.anomaly_replay --seeds 5001; 30 at rest is
# two to three hours of a worn band).
DEFAULT_MIN_SAMPLES = 30
MIN_BAND_SAMPLES = 30
# A reading more than this many robust standard deviations from the median of the elder's
# readings at the same cadence is unusual (tuned as above, with PERSIST 2: 4 gave 3 false
# alarms in 1,432 band-days against 1, 6 found 45 of 47 episodes against 46).
BAND_Z = 5.0
# Consecutive unusual readings before a trigger: an arrhythmia lasts (20 minutes to hours
# in the simulator, firmware_sim.conditions), while a wrist optical sensor misreads now and
# then, in motion above all (tuned as above: one reading gave 8 false alarms in 1,432
# band-days, two gave 1, at 2.5 min more to the alert at the median).
PERSIST = 2
# Readings within this long of one outside the safe range are not learnt: an arrhythmia that
# crosses the limits now and then (a heart block escaping at 38-44 bpm) is not the elder's
# usual, even when it starts before the baseline could judge it (a modelling choice).
EXTREME_NEAR_MS = 30 * 60 * 1000
# At most one anomaly trigger per elder per half hour (a repeat refreshes the active alert),
# but a high-severity one after a low one is not held back.
QUIET_MS = 30 * 60 * 1000
# 1.4826 x MAD estimates the standard deviation of normally distributed data; the MAD is
# floored at 2 bpm, about a wrist sensor's reading-to-reading spread at rest.
_MAD_TO_SD = 1.4826
_MIN_MAD_BPM = 2.0
# When an elder's baseline holds this many readings, every count is halved: the baseline
# spans roughly the last 2,048-4,096 readings (about a week of a band's fixes).
DECAY_AT = 4096
_BINS = EXTREME_HIGH_BPM - EXTREME_LOW_BPM + 1
_BANDS = len(CADENCE_BANDS_SPM) + 1
BASELINE_BYTES = _BANDS * _BINS * 2
_STALE_SHARE = 16
_VALUES = np.arange(EXTREME_LOW_BPM, EXTREME_HIGH_BPM + 1)


def cadence_band(steps: float, interval_ms: int) -> int | None:
    """Cadence band (0 still .. 6 brisk walking) of `steps` over `interval_ms`, or None when
    the interval gives no cadence (non-positive or over MAX_INTERVAL_MS)."""
    if not 0 < interval_ms <= MAX_INTERVAL_MS:
        return None
    return bisect_right(CADENCE_BANDS_SPM, max(0.0, steps) * 60_000 / interval_ms)


def histogram_median_mad(counts: npt.NDArray[np.integer]) -> tuple[float, float]:
    """(median, MAD) in bpm of the readings counted in `counts` (one count per bpm from
    EXTREME_LOW_BPM), the same values numpy's median gives over the readings themselves.

    Raises:
        ValueError: when `counts` holds no reading.
    """
    n = int(counts.sum())
    if n == 0:
        raise ValueError("no readings")
    median = _middle(counts, n) + EXTREME_LOW_BPM
    # Twice each deviation is an integer (the median may fall half-way between two rates).
    twice = np.abs(2 * _VALUES - round(2 * median))
    by_deviation = np.bincount(twice, weights=counts, minlength=2 * _BINS)
    return median, _middle(by_deviation, n) / 2


def _middle(counts: npt.NDArray[np.generic], n: int) -> float:
    """Median index of `n` readings counted per index (the mean of the two middle ones)."""
    cumulative = np.cumsum(counts)
    lower = int(np.searchsorted(cumulative, (n + 1) // 2))
    upper = int(np.searchsorted(cumulative, n // 2 + 1))
    return (lower + upper) / 2


def _extreme(hr_bpm: float) -> bool:
    return hr_bpm < EXTREME_LOW_BPM or hr_bpm > EXTREME_HIGH_BPM


@dataclass(slots=True)
class _Baseline:
    """One elder's heart-rate histograms per cadence band, with cached medians and MADs."""

    counts: npt.NDArray[np.uint16] = field(
        default_factory=lambda: np.zeros((_BANDS, _BINS), np.uint16)
    )
    # Per band: median, MAD and the band's readings when they were computed (0: never).
    cached: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((_BANDS, 3)))
    per_band: list[int] = field(default_factory=lambda: [0] * _BANDS)
    total: int = 0
    last_ts: int | None = None
    extreme_ms: int | None = None  # the latest reading outside the safe range
    # When each cadence band was last seen (device ms; None: never).
    seen_ms: list[int | None] = field(default_factory=lambda: [None] * _BANDS)
    streak: int = 0
    last_trigger_ms: int = -(10**15)
    last_high_ms: int = -(10**15)
    judging: bool = False  # has had enough readings to judge (counted once)

    def learn(self, band: int, hr_bpm: int) -> None:
        self.counts[band, hr_bpm - EXTREME_LOW_BPM] += 1
        self.per_band[band] += 1
        self.total += 1
        if self.total >= DECAY_AT:
            self.counts >>= 1
            self.per_band = [int(c) for c in self.counts.sum(axis=1)]
            self.total = sum(self.per_band)
            self.cached[:, 2] = 0

    def unusual(self, bpm: int, low: int | None, high: int | None) -> int | None:
        """1 when `bpm` is unusual for the elder at a cadence between bands `low` and
        `high` (None: unknown), 0 when usual, None when no band has `MIN_BAND_SAMPLES`
        readings yet.

        The heart rate rises with cadence and follows it with a lag, so a reading is too
        high when above the upper limit (median + BAND_Z robust SDs) of band `high`, or,
        while that band has too few readings, of the nearest known band at a higher cadence
        (none known: not too high); too low when below the lower limit of band `low` or of
        the nearest known band at a lower cadence (none known: not too low). An unknown
        cadence is bounded by the highest and lowest known bands.
        """
        known = [b for b in range(_BANDS) if self.per_band[b] >= MIN_BAND_SAMPLES]
        if not known:
            return None
        # Still (band 0) mixes sleep with sitting awake: it is too high only above what the
        # elder's incidental movement (band 1) allows.
        above = known[-1] if high is None else next((b for b in known if b >= max(high, 1)), -1)
        if above >= 0:
            median, sd = self.stats(above)
            if bpm > median + BAND_Z * sd:
                return 1
        below = known[0] if low is None else next((b for b in reversed(known) if b <= low), -1)
        if below < 0:
            return 0
        median, sd = self.stats(below)
        return int(bpm < median - BAND_Z * sd)

    def stats(self, band: int) -> tuple[float, float]:
        """(median, robust SD) in bpm of the band's readings.

        Raises:
            ValueError: when the band holds no reading.
        """
        n = self.per_band[band]
        median, mad, at = (float(v) for v in self.cached[band])
        if at == 0 or abs(n - at) * _STALE_SHARE >= at:
            median, mad = histogram_median_mad(self.counts[band])
            self.cached[band] = (median, mad, n)
        return median, _MAD_TO_SD * max(mad, _MIN_MAD_BPM)


@dataclass(slots=True)
class _Pending:
    elder_id: str
    device_id: str
    ts: int
    hr_bpm: float
    steps: float
    interval_ms: int | None
    stamp: tuple[int, int] | None = None


class AnomalyDetector:
    """Learns each elder's heart rate per cadence band and flags readings far outside it.

    With `defer` set, `on_sample` only queues; `flush` then judges everything queued and
    returns the triggers, each stamped (with `stamp`) with the identity of the message that
    carried the reading.
    """

    def __init__(self, min_samples: int = DEFAULT_MIN_SAMPLES) -> None:
        """Judge an elder's readings once `min_samples` of theirs have been learnt."""
        self.min_samples = min_samples
        self.defer = False
        self._elders: dict[str, _Baseline] = {}
        self._pending: list[_Pending] = []
        self._unstamped = 0
        self._judging = 0

    def learn(
        self, elder_id: str, ts: int, hr_bpm: float, steps: float, interval_ms: int | None
    ) -> None:
        """Add a stored historical reading to the baseline without judging it, in any order:
        `interval_ms` is the time its `steps` cover (0: unknown, not learnt)."""
        self._take(self._baseline(elder_id), ts, hr_bpm, steps, interval_ms)

    def on_sample(
        self,
        elder_id: str,
        device_id: str,
        ts: int,
        hr_bpm: float,
        steps: float,
        interval_ms: int | None = None,
    ) -> list[Finding]:
        """Judge one live reading (epoch ms, bpm, steps since the device's previous message,
        over `interval_ms`) against the elder's baseline, then learn from it. Without
        `interval_ms` the steps are taken to cover the time since the elder's previous
        reading; 0 means unknown (a message in between was lost). Deferred: queue it and
        return nothing."""
        self._pending.append(_Pending(elder_id, device_id, ts, hr_bpm, steps, interval_ms))
        if self.defer:
            return []
        return list(self.flush())

    def stamp(self, ts: int, seq: int) -> None:
        """Give the readings queued since the last stamp their message identity."""
        for pending in self._pending[self._unstamped :]:
            pending.stamp = (ts, seq)
        self._unstamped = len(self._pending)

    def pending(self) -> int:
        """Readings queued for the next `flush`."""
        return len(self._pending)

    def flush(self) -> list[Trigger]:
        """Judge every queued reading in arrival order; returns the triggers."""
        batch, self._pending, self._unstamped = self._pending, [], 0
        out: list[Trigger] = []
        for p in batch:
            trigger = self._judge(p)
            if trigger is not None:
                out.append(trigger)
        return out

    def baselines(self) -> int:
        """Elders whose baseline has had enough readings to judge (kept, not recounted: the
        metrics read it while the message loop runs)."""
        return self._judging

    def memory_bytes(self) -> int:
        """Bytes held by the baselines' histograms (numpy buffers)."""
        return len(self._elders) * BASELINE_BYTES

    def _judge(self, p: _Pending) -> Trigger | None:
        elder = self._baseline(p.elder_id)
        extreme = _extreme(p.hr_bpm)
        verdict = self._take(elder, p.ts, p.hr_bpm, p.steps, p.interval_ms, judge=True)
        if extreme:
            elder.streak = 0
        elif verdict is None:
            return None
        else:
            elder.streak = elder.streak + 1 if verdict else 0
            if elder.streak < PERSIST:
                return None
        # A high-severity reading is held back only by an earlier high one: it raises the
        # severity of an active low alert (alerting.store) instead of waiting half an hour.
        if p.ts - (elder.last_high_ms if extreme else elder.last_trigger_ms) < QUIET_MS:
            return None
        elder.last_trigger_ms = p.ts
        if extreme:
            elder.last_high_ms = p.ts
        severity = Severity.HIGH if extreme else Severity.LOW
        what = "heart rate outside the safe range" if extreme else "unusual heart rate or activity"
        trigger = Trigger(AlertKind.ANOMALY, severity, p.device_id, p.ts, what)
        if p.stamp is not None:
            trigger = replace(trigger, event_ts=p.stamp[0], event_seq=p.stamp[1])
        return trigger

    def _take(
        self,
        elder: _Baseline,
        ts: int,
        hr_bpm: float,
        steps: float,
        interval_ms: int | None,
        judge: bool = False,
    ) -> int | None:
        """Learn a reading; with `judge`, first judge it: returns None when it could not be
        judged, else 1 (unusual) or 0 (usual). Extreme readings are neither judged nor learnt."""
        if interval_ms is None:
            interval_ms = 0 if elder.last_ts is None else ts - elder.last_ts
        band = cadence_band(steps, interval_ms)
        if judge and (elder.last_ts is None or ts > elder.last_ts):
            elder.last_ts = ts
        if _extreme(hr_bpm):
            elder.extreme_ms = ts if elder.extreme_ms is None else max(elder.extreme_ms, ts)
            return None
        bpm = round(hr_bpm)
        verdict = None
        if judge and elder.total >= self.min_samples:
            if band is None:
                verdict = elder.unusual(bpm, None, None)
            else:
                # The heart rate lags the cadence: judge between the lowest and highest
                # cadence of the last HR_LAG_MS.
                low = high = band
                for b, at in enumerate(elder.seen_ms):
                    if at is not None and ts - at <= HR_LAG_MS:
                        low, high = min(low, b), max(high, b)
                verdict = elder.unusual(bpm, low, high)
        if band is not None:
            if elder.extreme_ms is None or abs(ts - elder.extreme_ms) > EXTREME_NEAR_MS:
                elder.learn(band, bpm)
                if (
                    not elder.judging
                    and elder.total >= self.min_samples
                    and elder.per_band[band] >= MIN_BAND_SAMPLES
                ):
                    elder.judging = True
                    self._judging += 1
            seen = elder.seen_ms[band]
            elder.seen_ms[band] = ts if seen is None else max(seen, ts)
        return verdict

    def _baseline(self, elder_id: str) -> _Baseline:
        elder = self._elders.get(elder_id)
        if elder is None:
            elder = self._elders[elder_id] = _Baseline()
        return elder
