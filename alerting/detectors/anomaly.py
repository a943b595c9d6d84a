"""Anomaly: heart rate or activity unusual for this elder (an isolation forest per elder).

Each elder's forest is fitted straight into a shared arena (`alerting.detectors.iforest`), so
scoring costs microseconds per sample and the samples of a whole drain cycle are scored in one
vectorised walk (`defer` + `flush`). Fitting takes at most `FIT_SHARE` of the wall clock:
after a restart every elder with history needs a forest at once, and the fits wait their
turn (the robust z-score and the fixed limits still judge that elder's samples meanwhile)
rather than hold up every other message. Deferred scoring makes
the same decisions as scoring each sample on arrival: every sample is scored by the forest that
was current when it arrived and its robust z-score is taken over the history it arrived to.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from alerting.detectors.iforest import ForestPool, fit_forest
from alerting.geo import local_hour
from alerting.model import Finding, Trigger
from gateway.contract import AlertKind, Severity

logger = logging.getLogger(__name__)

# Extreme heart rates raise at high severity whatever the model says: below 40 bpm awake is
# significant bradycardia (2018 ACC/AHA/HRS bradycardia guideline); above 150 bpm at an
# elder's activity level is well beyond the age-predicted maximum band for sustained effort.
EXTREME_LOW_BPM = 40
EXTREME_HIGH_BPM = 150
DEFAULT_MIN_SAMPLES = 200
DEFAULT_REFIT_EVERY = 1000
# Share of the wall clock fitting may take, and the most it may take in one go (seconds):
# the rest of the time is the message path's (an SOS waits behind whatever runs).
FIT_SHARE = 0.25
FIT_BURST_S = 0.5
# Expected share of unusual readings (IsolationForest contamination).
DEFAULT_CONTAMINATION = 0.005
# At most one anomaly trigger per elder per half hour: a repeat refreshes the active alert.
QUIET_MS = 30 * 60 * 1000
# Beyond the forest's own outlier cut: well outside this elder's usual cloud.
SCORE_MARGIN = 0.08
# Heart rate more than 6 robust standard deviations from the elder's median.
MAX_ROBUST_Z = 6.0
# 1.4826 x MAD estimates the standard deviation of normally distributed data.
_MAD_TO_SD = 1.4826
_MIN_MAD_BPM = 2.0
_HISTORY = 3000
_FIRST_ROWS = 16
# Bytes a history row takes: float32 heart rate, float32 log1p(steps), the hour, and the
# float32 heart rate again in the sorted array.
_ROW_BYTES = 13
_TREES = 50
# Memory for the live forests (the pool's arena grows by doubling, so it may hold up to
# twice that). A fitted forest of 50 trees on 200-3,000 rows holds 8,600-9,700 nodes in a
# 12,288-node slot, 288 KiB (bench/bench_detector_state.py), so 4 GiB keeps a forest for
# about 14,500 elders. Past the budget an elder is judged by the robust z-score and the fixed
# heart-rate limits only (as while a fit waits), and its fit is tried again after another
# `refit_every` samples. Operators of larger districts give it more
# (ALERTING_ANOMALY_FOREST_MIB): a forest for each of Xicheng's ~100,000 elders takes ~28 GiB.
DEFAULT_FOREST_BUDGET_MIB = 4096
# Nodes assumed for a forest before any has been fitted (the largest seen is used after).
_TYPICAL_NODES = 10_000
# At most one warning per this many seconds about elders left without a forest.
_REFUSED_WARN_S = 600.0

Row = tuple[float, float, float, float]


# The hour's position on the daily circle, as `_row` has always computed it (math.sin/cos of
# the same angle), so rows rebuilt from a stored hour are the rows that were learnt.
_SIN = tuple(math.sin(2 * math.pi * h / 24) for h in range(24))
_COS = tuple(math.cos(2 * math.pi * h / 24) for h in range(24))


@dataclass(slots=True)
class _Elder:
    """One elder's history: a ring (oldest at `head` once full) and its heart rates sorted.

    Stored compactly, 13 bytes a row instead of the 192 of a float64 row and a Python float
    in a sorted list: the heart rate and log1p(steps) as float32 (the forest reads its rows
    as float32 anyway, like scikit-learn's trees, and contract §1 heart rates are integers,
    exact in float32), the local hour as one byte (the row's sin/cos come from it), and the
    sorted heart rates in a float32 array. A full day's 3,000 rows take 39 KiB, not 191. The
    arrays start at `_FIRST_ROWS` rows and double as they fill, up to `_HISTORY`.
    """

    hr: npt.NDArray[np.float32] = field(default_factory=lambda: np.empty(_FIRST_ROWS, np.float32))
    lsteps: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.empty(_FIRST_ROWS, np.float32)
    )
    hour: npt.NDArray[np.int8] = field(default_factory=lambda: np.empty(_FIRST_ROWS, np.int8))
    sorted_hr: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.empty(_FIRST_ROWS, np.float32)
    )
    count: int = 0
    head: int = 0
    forest: int | None = None
    since_fit: int = 0
    last_trigger_ms: int = -(10**15)
    refused: bool = False  # its forest did not fit in the memory budget

    def append(self, hour: int, row: Row) -> int:
        """Learn `row` (as `_row` makes it) taken at local `hour` (0-23); returns the bytes
        the arrays grew by."""
        hr = np.float32(row[0])
        s, n = self.sorted_hr, self.count
        grew = 0
        if n == _HISTORY:
            at = self.head
            evicted = self.hr[at]
            gone = int(np.searchsorted(s[:n], evicted, side="left"))
            s[gone : n - 1] = s[gone + 1 : n]
            n -= 1
            self.head = (self.head + 1) % _HISTORY
        else:
            if n == len(self.hr):
                size = min(2 * n, _HISTORY)
                grew = (size - n) * _ROW_BYTES
                self.hr, self.lsteps, self.hour, self.sorted_hr = (
                    np.concatenate((a[:n], np.empty(size - n, a.dtype)))
                    for a in (self.hr, self.lsteps, self.hour, self.sorted_hr)
                )
                s = self.sorted_hr
            at = n
            self.count = n + 1
        self.hr[at] = hr
        self.lsteps[at] = row[1]
        self.hour[at] = hour
        into = int(np.searchsorted(s[:n], hr, side="right"))
        s[into + 1 : n + 1] = s[into:n]
        s[into] = hr
        return grew

    def ordered(self) -> npt.NDArray[np.float64]:
        """Rows oldest first, (count, 4): heart rate, log1p(steps), sin and cos of the hour."""
        n = self.count
        order = np.arange(n) if n < _HISTORY else (np.arange(n) + self.head) % n
        hours = self.hour[order]
        return np.column_stack(
            (
                self.hr[order].astype(np.float64),
                self.lsteps[order].astype(np.float64),
                np.asarray(_SIN)[hours],
                np.asarray(_COS)[hours],
            )
        )

    def z_unusual(self, hr_bpm: float) -> bool:
        """Whether `hr_bpm` is more than MAX_ROBUST_Z robust SDs from the median."""
        s, n = self.sorted_hr, self.count
        median = float(s[n // 2]) if n % 2 else (float(s[n // 2 - 1]) + float(s[n // 2])) / 2
        deviation = abs(hr_bpm - median)
        # The MAD is at least _MIN_MAD_BPM, so a small deviation settles it without the MAD.
        if deviation / (_MAD_TO_SD * _MIN_MAD_BPM) <= MAX_ROBUST_Z:
            return False
        hrs = s[:n].astype(np.float64)
        mad = max(float(np.median(np.abs(hrs - median))), _MIN_MAD_BPM)
        return deviation / (_MAD_TO_SD * mad) > MAX_ROBUST_Z


@dataclass(slots=True)
class _Pending:
    elder_id: str
    device_id: str
    ts: int
    hr_bpm: float
    row: Row
    forest: int | None = None
    unusual: bool = False
    stamp: tuple[int, int] | None = None


def _row(ts: int, hr_bpm: float, steps: float) -> Row:
    hour = local_hour(ts)
    return (hr_bpm, math.log1p(max(0.0, steps)), _SIN[hour], _COS[hour])


def _extreme(hr_bpm: float) -> bool:
    return hr_bpm < EXTREME_LOW_BPM or hr_bpm > EXTREME_HIGH_BPM


class AnomalyDetector:
    """Learns each elder's usual (heart rate, activity, hour) and flags outliers.

    With `defer` set, `on_sample` only queues; `flush` then scores everything queued in one
    vectorised pass and returns the triggers, each stamped (with `stamp`) with the identity of
    the message that carried the sample.
    """

    def __init__(
        self,
        min_samples: int = DEFAULT_MIN_SAMPLES,
        refit_every: int = DEFAULT_REFIT_EVERY,
        contamination: float = DEFAULT_CONTAMINATION,
        seed: int = 0,
        forest_budget_bytes: int | None = DEFAULT_FOREST_BUDGET_MIB * 2**20,
    ) -> None:
        self.min_samples = min_samples
        self.refit_every = refit_every
        self.contamination = contamination
        self.seed = seed
        self.defer = False
        self.forest_budget_bytes = forest_budget_bytes
        self.pool = ForestPool(_TREES, forest_budget_bytes)
        self.refused = 0  # elders without a forest for want of memory
        self._history_bytes = 0
        self._largest = _TYPICAL_NODES
        self._warned_s = -_REFUSED_WARN_S
        self._elders: dict[str, _Elder] = {}
        self._pending: list[_Pending] = []
        self._unstamped = 0
        # Elders due a (re)fit the budget had no room for, oldest first.
        self._waiting: dict[str, None] = {}
        self._fit_tokens_s = FIT_BURST_S
        self._tokens_at = time.monotonic()
        self.fits = 0

    def learn(self, elder_id: str, ts: int, hr_bpm: float, steps: float) -> None:
        """Add a stored historical sample (baseline) without checking it."""
        elder = self._elder(elder_id)  # first: a new elder adds its first rows' bytes
        self._history_bytes += elder.append(local_hour(ts), _row(ts, hr_bpm, steps))

    def on_sample(
        self, elder_id: str, device_id: str, ts: int, hr_bpm: float, steps: float
    ) -> list[Finding]:
        """Check one live sample against the elder's model, then learn from it.

        Deferred: queue it and return nothing (`flush` decides).
        """
        pending = _Pending(elder_id, device_id, ts, hr_bpm, _row(ts, hr_bpm, steps))
        self._pending.append(pending)
        if self.defer:
            return []
        return list(self.flush())

    def stamp(self, ts: int, seq: int) -> None:
        """Give the samples queued since the last stamp their message identity (device time)."""
        for pending in self._pending[self._unstamped :]:
            pending.stamp = (ts, seq)
        self._unstamped = len(self._pending)

    def pending(self) -> int:
        """Samples queued for the next `flush`."""
        return len(self._pending)

    def flush(self) -> list[Trigger]:
        """Score every queued sample (in arrival order, as if each had been scored alone)."""
        batch, self._pending, self._unstamped = self._pending, [], 0
        self.fit_waiting()
        if not batch:
            return []
        retired = self._advance(batch)
        scored = [p for p in batch if p.forest is not None]
        scores = self.pool.decision(
            [p.forest for p in scored if p.forest is not None], np.array([p.row for p in scored])
        )
        for forest in retired:
            self.pool.free(forest)
        for p, score in zip(scored, scores, strict=True):
            p.unusual = p.unusual or bool(score < -SCORE_MARGIN)
        out: list[Trigger] = []
        for p in batch:
            extreme = _extreme(p.hr_bpm)
            if not (extreme or p.unusual):
                continue
            elder = self._elders[p.elder_id]
            if p.ts - elder.last_trigger_ms < QUIET_MS:
                continue
            elder.last_trigger_ms = p.ts
            severity = Severity.HIGH if extreme else Severity.LOW
            what = (
                "heart rate outside the safe range" if extreme else "unusual heart rate or activity"
            )
            trigger = Trigger(AlertKind.ANOMALY, severity, p.device_id, p.ts, what)
            if p.stamp is not None:
                trigger = replace(trigger, event_ts=p.stamp[0], event_seq=p.stamp[1])
            out.append(trigger)
        return out

    def _advance(self, batch: list[_Pending]) -> list[int]:
        """Learn the batch in order, noting each sample's forest and z verdict on arrival;
        returns the forests replaced on the way (still needed to score their samples)."""
        retired: list[int] = []
        for p in batch:
            elder = self._elder(p.elder_id)
            if not _extreme(p.hr_bpm) and elder.count >= self.min_samples:
                p.forest = elder.forest  # None while its first fit waits for the budget
                # IsolationForest does not extrapolate well beyond the range it saw, so a
                # robust z-score of the heart rate backs it up.
                p.unusual = elder.z_unusual(p.hr_bpm)
            self._history_bytes += elder.append(local_hour(p.ts), p.row)
            elder.since_fit += 1
            if elder.count >= self.min_samples and (
                (elder.forest is None and not elder.refused) or elder.since_fit >= self.refit_every
            ):
                if not self._may_fit():
                    self._waiting[p.elder_id] = None
                elif elder.forest is None and not self.pool.room(self._largest):
                    self._refuse(elder)
                else:
                    if elder.forest is not None:
                        retired.append(elder.forest)
                    elder.forest = self._fit(elder)
                    self._waiting.pop(p.elder_id, None)
        return retired

    def waiting(self) -> int:
        """Elders whose due (re)fit waits for the fitting budget."""
        return len(self._waiting)

    def _may_fit(self) -> bool:
        """Whether the fitting budget (FIT_SHARE of the wall clock, FIT_BURST_S at most) has
        time left; refills it first."""
        now = time.monotonic()
        self._fit_tokens_s = min(
            FIT_BURST_S, self._fit_tokens_s + (now - self._tokens_at) * FIT_SHARE
        )
        self._tokens_at = now
        return self._fit_tokens_s > 0

    def fit_waiting(self) -> None:
        """Fit waiting elders, oldest first, while the budget lasts. Called before each batch
        is learnt (its samples are then scored as if they had arrived after the fit) and on
        the engine's tick, so the fits go on while no band reports."""
        while self._waiting and self._may_fit():
            elder_id = next(iter(self._waiting))
            del self._waiting[elder_id]
            elder = self._elders.get(elder_id)
            if elder is None or elder.count < self.min_samples:
                continue
            if elder.forest is None and not self.pool.room(self._largest):
                self._refuse(elder)
                continue
            old = elder.forest
            elder.forest = self._fit(elder)
            if old is not None:
                self.pool.free(old)

    def _elder(self, elder_id: str) -> _Elder:
        elder = self._elders.get(elder_id)
        if elder is None:
            elder = self._elders[elder_id] = _Elder()
            self._history_bytes += _FIRST_ROWS * _ROW_BYTES
        return elder

    def _fit(self, elder: _Elder) -> int:
        started = time.monotonic()
        forest = fit_forest(
            elder.ordered(), trees=_TREES, contamination=self.contamination, seed=self.seed
        )
        elder.since_fit = 0
        if elder.refused:
            elder.refused = False
            self.refused -= 1
        self.fits += 1
        self._largest = max(self._largest, forest.feature.size)
        self._fit_tokens_s -= time.monotonic() - started
        return self.pool.add(forest)

    def _refuse(self, elder: _Elder) -> None:
        """No room for this elder's first forest: z-score and fixed limits judge it; its fit
        is tried again after another `refit_every` samples."""
        elder.since_fit = 0
        if not elder.refused:
            elder.refused = True
            self.refused += 1
        now = time.monotonic()
        if now - self._warned_s >= _REFUSED_WARN_S:
            self._warned_s = now
            budget = (self.forest_budget_bytes or 0) / 2**20
            logger.warning(
                "anomaly model memory budget (%.0f MiB, %d forests) is full: %d elders are"
                " judged by the robust z-score and the fixed heart-rate limits only; raise"
                " ALERTING_ANOMALY_FOREST_MIB to give them a forest",
                budget,
                len(self.pool),
                self.refused,
            )

    def memory_bytes(self) -> int:
        """Bytes held by the histories and the forest arena (numpy buffers)."""
        return self._history_bytes + self.pool.nbytes()
