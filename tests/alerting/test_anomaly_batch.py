"""The anomaly model: per-cadence heart-rate baselines judged as a plain reference judges,
batched judging deciding exactly as judging one reading at a time, and its memory."""

from __future__ import annotations

import random
import statistics
import tracemalloc

import numpy as np
import pytest

from alerting.detectors import anomaly
from alerting.detectors.anomaly import (
    BAND_Z,
    BASELINE_BYTES,
    CADENCE_BANDS_SPM,
    DECAY_AT,
    EXTREME_HIGH_BPM,
    EXTREME_LOW_BPM,
    EXTREME_NEAR_MS,
    HR_LAG_MS,
    MAX_INTERVAL_MS,
    MIN_BAND_SAMPLES,
    PERSIST,
    QUIET_MS,
    AnomalyDetector,
    cadence_band,
    histogram_median_mad,
)
from gateway.contract import Severity

T0 = 1_780_000_000_000
MIN = 60_000
Sample = tuple[str, str, int, float, float]


def _robust(values: list[int]) -> tuple[float, float]:
    median = statistics.median(values)
    mad = max(statistics.median(abs(v - median) for v in values), 2.0)
    return median, 1.4826 * mad


def _reference(stream: list[Sample], min_samples: int) -> list[tuple[str, int]]:
    """The rules of `alerting.detectors.anomaly` over plain lists of readings (exact medians
    recomputed for every reading; no histograms, no cache)."""
    readings: dict[str, list[list[int]]] = {}
    last_ts: dict[str, int] = {}
    seen: dict[str, dict[int, int]] = {}  # elder -> band -> latest ts
    streak: dict[str, int] = {}
    last_trigger: dict[str, int] = {}
    last_high: dict[str, int] = {}
    extreme_at: dict[str, int] = {}
    out = []
    for elder, device, ts, hr, steps in stream:
        bands = readings.setdefault(elder, [[] for _ in range(len(CADENCE_BANDS_SPM) + 1)])
        prev = last_ts.get(elder)
        band = None
        if prev is not None and 0 < ts - prev <= MAX_INTERVAL_MS:
            spm = max(0.0, steps) * 60_000 / (ts - prev)
            band = sum(spm >= edge for edge in CADENCE_BANDS_SPM)
        if prev is None or ts > prev:
            last_ts[elder] = ts
        fire = False
        if hr < EXTREME_LOW_BPM or hr > EXTREME_HIGH_BPM:
            streak[elder] = 0
            fire = True
            extreme_at[elder] = max(extreme_at.get(elder, ts), ts)
        else:
            bpm = round(hr)
            known = [b for b, r in enumerate(bands) if len(r) >= MIN_BAND_SAMPLES]
            if sum(map(len, bands)) >= min_samples and known and band is None:
                above, below = known[-1], known[0]
            elif sum(map(len, bands)) >= min_samples and known:
                cadences = [b for b, t in seen.get(elder, {}).items() if ts - t <= HR_LAG_MS]
                low, high = min([*cadences, band]), max([*cadences, band])
                above = next((b for b in known if b >= high), None)
                below = next((b for b in reversed(known) if b <= low), None)
            else:
                above = below = None
                known = []
            if known:
                unusual = False
                if above is not None:
                    median, sd = _robust(bands[above])
                    unusual = bpm > median + BAND_Z * sd
                if not unusual and below is not None:
                    median, sd = _robust(bands[below])
                    unusual = bpm < median - BAND_Z * sd
                streak[elder] = streak.get(elder, 0) + 1 if unusual else 0
                fire = streak[elder] >= PERSIST
            if band is not None:
                if abs(ts - extreme_at.get(elder, -(10**15))) > EXTREME_NEAR_MS:
                    bands[band].append(bpm)
                latest = seen.setdefault(elder, {})
                latest[band] = max(latest.get(band, ts), ts)
        extreme = hr < EXTREME_LOW_BPM or hr > EXTREME_HIGH_BPM
        quiet_since = (last_high if extreme else last_trigger).get(elder, -(10**15))
        if fire and ts - quiet_since >= QUIET_MS:
            last_trigger[elder] = ts
            if extreme:
                last_high[elder] = ts
            out.append((device, ts))
    return out


def _stream(n: int, elders: int, seed: int, drift_bpm: float = 0.0) -> list[Sample]:
    """Elders resting (a fix every 5 min, a few steps) and walking (every 30 s, ~95 steps a
    minute), heart rate tied to the activity and rising by `drift_bpm` over the stream; some
    racing-heart spells at rest, slow hearts while walking, extremes, gaps longer than
    MAX_INTERVAL_MS and clocks stepping back."""
    rng = random.Random(seed)
    clock = [T0] * elders
    walking = [False] * elders
    spell = [0] * elders
    rest = [rng.randint(58, 80) for _ in range(elders)]
    out: list[Sample] = []
    for i in range(n):
        e = rng.randrange(elders)
        if rng.random() < 0.02:
            walking[e] = not walking[e]
        step_ms = 30_000 if walking[e] else 300_000
        if rng.random() < 0.005:
            step_ms = 45 * MIN  # a gap: no cadence
        if rng.random() < 0.003:
            step_ms = -10 * MIN  # a clock stepping back
        clock[e] += step_ms
        minutes = abs(step_ms) / MIN
        steps = rng.gauss(95, 5) * minutes if walking[e] else rng.randint(0, 5) * minutes
        hr = rest[e] + drift_bpm * i / n + (22 if walking[e] else 0) + rng.gauss(0, 2)
        if spell[e] == 0 and rng.random() < 0.01:
            spell[e] = rng.randint(1, 6)
        if spell[e]:
            spell[e] -= 1
            hr = rest[e] - 25 if walking[e] else rest[e] + 45
        if rng.random() < 0.003:
            hr = rng.choice([32.0, 165.0])
        out.append((f"el-{e}", f"band-{e}", clock[e], round(hr), max(0.0, round(steps))))
    return out


@pytest.fixture
def exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recompute a band's median and MAD whenever it has learnt a reading."""
    monkeypatch.setattr(anomaly, "_STALE_SHARE", 10**12)


@pytest.mark.parametrize("n", [1, 2, 7, 30, 301, 2048])
def test_histogram_median_and_mad_equal_numpy_over_the_readings(n: int) -> None:
    rng = np.random.default_rng(n)
    values = rng.integers(EXTREME_LOW_BPM, EXTREME_HIGH_BPM + 1, n)
    values[: n // 3] = rng.integers(60, 64, n // 3)  # ties around the middle
    counts = np.bincount(values - EXTREME_LOW_BPM, minlength=anomaly._BINS)
    median, mad = histogram_median_mad(counts.astype(np.uint16))
    assert median == float(np.median(values))
    assert mad == float(np.median(np.abs(values - np.median(values))))
    with pytest.raises(ValueError):
        histogram_median_mad(np.zeros_like(counts))


def test_cadence_bands_follow_steps_per_minute_over_the_interval() -> None:
    assert cadence_band(0, 5 * MIN) == 0
    assert cadence_band(4, 5 * MIN) == 0  # 0.8 steps a minute: still
    assert cadence_band(15, 5 * MIN) == 1
    assert cadence_band(10, 30_000) == 2  # 20 a minute
    assert cadence_band(48, 30_000) == 5  # 96 a minute: medium walking
    assert cadence_band(55, 30_000) == 6  # 110: brisk
    assert cadence_band(-3, MIN) == 0  # a negative count is no steps
    # No cadence without a usable interval: none, a clock stepping back, a long gap.
    assert cadence_band(10, 0) is None
    assert cadence_band(10, -MIN) is None
    assert cadence_band(10, MAX_INTERVAL_MS + 1) is None
    assert cadence_band(10, MAX_INTERVAL_MS) == 0


def test_immediate_mode_equals_the_plain_reference(exact: None) -> None:
    stream = _stream(6000, 5, seed=5)
    expected = _reference(stream, min_samples=40)
    assert len(expected) >= 15  # the stream exercises extremes, spells and persistence
    detector = AnomalyDetector(min_samples=40)
    got = [(f.device_id, f.event_ts) for s in stream for f in detector.on_sample(*s)]
    assert got == expected


def test_batched_triggers_equal_the_per_message_detector(exact: None) -> None:
    stream = _stream(6000, 4, seed=3)
    expected = _reference(stream, min_samples=40)
    assert len(expected) >= 10
    detector = AnomalyDetector(min_samples=40)
    detector.defer = True
    got: list[tuple[str, int]] = []
    rng = random.Random(9)
    i = 0
    while i < len(stream):
        size = rng.randint(1, 400)
        for seq, sample in enumerate(stream[i : i + size], start=i):
            assert detector.on_sample(*sample) == []
            detector.stamp(sample[2] - 5, seq)
        for trigger in detector.flush():
            # Stamped with the identity of the message that carried the reading.
            assert stream[trigger.event_seq][2] == trigger.event_ts + 5
            got.append((trigger.device_id, trigger.event_ts + 5))
        i += size
    assert got == expected
    assert detector.pending() == 0


def test_cached_statistics_decide_like_exact_ones_on_a_long_stream() -> None:
    """The shipped cache (recomputed after 1/16 more readings) against exact statistics, on
    heart rates drifting 20 bpm: the same triggers but for a handful at the margin."""
    stream = _stream(20_000, 6, seed=11, drift_bpm=20)
    exact_triggers = set(_reference(stream, min_samples=40))
    detector = AnomalyDetector(min_samples=40)
    cached = {(f.device_id, f.event_ts) for s in stream for f in detector.on_sample(*s)}
    assert len(exact_triggers) >= 30
    assert len(cached ^ exact_triggers) <= len(exact_triggers) // 20


def _settle(detector: AnomalyDetector, elder: str, start: int) -> int:
    """An elder with a baseline at rest (68 bpm, a few steps a minute) and walking (90 bpm,
    ~96 steps a minute, after a minute of lag): returns the clock after it."""
    t = start
    for k in range(2 * MIN_BAND_SAMPLES + 10):
        t += 5 * MIN
        assert detector.on_sample(elder, "band-1", t, 68 + k % 3 - 1, 20) == []
        for j in range(4):  # a short walk: 4 fixes 30 s apart, the first still lagging
            t += 30_000
            hr = 80 if j == 0 else 90 + k % 3 - 1
            assert detector.on_sample(elder, "band-1", t, hr, 48) == []
        t += 5 * MIN
        assert detector.on_sample(elder, "band-1", t, 69, 15) == []
    return t


def test_a_racing_heart_at_rest_is_flagged_but_the_same_rate_walking_is_not() -> None:
    detector = AnomalyDetector()
    t = _settle(detector, "el-1", T0)
    # 100 bpm at rest: the first unusual reading waits for a second (PERSIST).
    assert PERSIST == 2
    assert detector.on_sample("el-1", "band-1", t + 5 * MIN, 100, 15) == []
    (odd,) = detector.on_sample("el-1", "band-1", t + 10 * MIN, 101, 12)
    assert odd.severity is Severity.LOW and odd.event_ts == t + 10 * MIN
    # Two readings at 96 bpm while walking briskly are usual for this elder.
    other = AnomalyDetector()
    t = _settle(other, "el-2", T0)
    for j in range(4):
        assert other.on_sample("el-2", "band-2", t + 5 * MIN + j * 30_000, 96, 48) == []


def test_a_slow_heart_while_walking_is_flagged_after_the_lag() -> None:
    detector = AnomalyDetector()
    t = _settle(detector, "el-1", T0)
    t += 5 * MIN
    assert detector.on_sample("el-1", "band-1", t, 68, 15) == []
    # Walking at resting heart rate: within HR_LAG_MS of rest it may still be the lag ...
    found = []
    for _ in range(HR_LAG_MS // 30_000):
        t += 30_000
        found += detector.on_sample("el-1", "band-1", t, 68, 48)
    assert found == []
    # ... but not after: two more readings at 68 while walking trigger.
    t += 30_000
    assert detector.on_sample("el-1", "band-1", t, 68, 48) == []
    t += 30_000
    assert len(detector.on_sample("el-1", "band-1", t, 68, 48)) == 1


def test_extremes_raise_high_at_once_and_are_not_learnt() -> None:
    detector = AnomalyDetector()
    (low,) = detector.on_sample("el-9", "band-9", T0, EXTREME_LOW_BPM - 1, 0)
    assert low.severity is Severity.HIGH and "safe range" in low.reason
    t = _settle(detector, "el-1", T0)
    before = detector._elders["el-1"].counts.copy()
    (high,) = detector.on_sample("el-1", "band-1", t + 5 * MIN, EXTREME_HIGH_BPM + 1, 15)
    assert high.severity is Severity.HIGH
    assert (detector._elders["el-1"].counts == before).all()
    # One trigger per elder per QUIET_MS: a second extreme within it refreshes the alert.
    assert detector.on_sample("el-1", "band-1", t + 6 * MIN, 175, 15) == []
    assert len(detector.on_sample("el-1", "band-1", t + 6 * MIN + QUIET_MS, 175, 15)) == 1


def test_nothing_but_extremes_is_judged_before_a_band_has_enough_readings() -> None:
    detector = AnomalyDetector()
    t = T0
    for k in range(MIN_BAND_SAMPLES - 1):  # the first has no cadence: one short of enough
        t += 5 * MIN
        assert detector.on_sample("el-1", "band-1", t, 68 + k % 2, 15) == []
    assert detector.baselines() == 0
    for hr in (120, 121):  # not judged; the second makes MIN_BAND_SAMPLES
        t += 5 * MIN
        assert detector.on_sample("el-1", "band-1", t, hr, 15) == []
    assert detector.baselines() == 1
    t += 5 * MIN
    assert detector.on_sample("el-1", "band-1", t, 122, 15) == []
    t += 5 * MIN
    assert len(detector.on_sample("el-1", "band-1", t, 123, 15)) == 1


def test_an_unknown_cadence_is_judged_by_every_known_band_and_not_learnt() -> None:
    detector = AnomalyDetector()
    t = _settle(detector, "el-1", T0)
    elder = detector._elders["el-1"]
    learnt = elder.total
    # After a gap longer than MAX_INTERVAL_MS: 80 bpm lies between rest and walking: usual.
    t += MAX_INTERVAL_MS + MIN
    assert detector.on_sample("el-1", "band-1", t, 80, 500) == []
    assert elder.total == learnt
    # A clock stepping back, twice, with a racing heart: above the walking band's limit.
    assert detector.on_sample("el-1", "band-1", t - 20 * MIN, 130, 0) == []
    (odd,) = detector.on_sample("el-1", "band-1", t - 19 * MIN, 131, 0)
    assert odd.severity is Severity.LOW
    assert elder.total == learnt


def test_a_new_cadence_above_every_known_one_has_no_upper_bound_yet() -> None:
    """An elder known only at rest starts walking: a higher heart rate is expected."""
    detector = AnomalyDetector()
    t = T0
    for k in range(MIN_BAND_SAMPLES + 5):
        t += 5 * MIN
        detector.on_sample("el-1", "band-1", t, 66 + k % 3, 15)
    found = []
    for _ in range(20):
        t += 30_000
        found += detector.on_sample("el-1", "band-1", t, 95, 48)
    assert found == []


def test_the_baseline_halves_at_decay_and_keeps_its_median() -> None:
    detector = AnomalyDetector()
    rng = random.Random(1)
    t = T0
    for k in range(DECAY_AT):
        t += 5 * MIN
        detector.learn("el-1", t, rng.randint(60, 76), 15, 5 * MIN if k else 0)
    elder = detector._elders["el-1"]
    assert elder.total == DECAY_AT - 1  # the first reading has no cadence
    median = elder.stats(1)[0]
    detector.learn("el-1", t + 5 * MIN, 68, 15, 5 * MIN)
    assert elder.total < DECAY_AT // 2 + 10
    assert int(elder.counts.sum()) == elder.total == sum(elder.per_band)
    assert abs(elder.stats(1)[0] - median) <= 1


def test_memory_per_elder_is_a_few_kib_whatever_the_history() -> None:
    detector = AnomalyDetector()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for e in range(50):
        t = T0
        for k in range(1500):
            t += 30_000
            walked = [0, 3, 12, 25, 35, 45, 55][k % 7]
            detector.learn(f"el-{e}", t, 60 + k % 40, walked, 30_000)
    per_elder = (tracemalloc.get_traced_memory()[0] - base) / 50
    tracemalloc.stop()
    assert detector.memory_bytes() == 50 * BASELINE_BYTES
    # The bound: 4 KiB per registered device, ~10 KiB per elder at 2.45 devices.
    assert BASELINE_BYTES < per_elder < 4096


def test_an_arrhythmia_crossing_the_limits_is_not_learnt_as_usual() -> None:
    """A heart block escaping at 39-42 bpm from the first reading: its readings inside the
    limits are not learnt either, so the normal rhythm after it is not unusual."""
    detector = AnomalyDetector()
    t = T0
    found = []
    for k in range(24):  # two hours, one extreme reading in four
        t += 5 * MIN
        found += detector.on_sample("el-1", "band-1", t, (41, 39, 42, 40)[k % 4], 15)
    assert {f.severity for f in found} == {Severity.HIGH}
    assert detector._elders["el-1"].total == 0
    t += EXTREME_NEAR_MS
    later = []
    for k in range(2 * MIN_BAND_SAMPLES):
        t += 5 * MIN
        later += detector.on_sample("el-1", "band-1", t, 70 + k % 3, 15)
    assert later == [] and detector.baselines() == 1


def test_history_is_learnt_in_any_order_and_after_live_readings() -> None:
    """Stored readings come newest first and after catch-up's live ones: with each reading's
    own interval the baseline is the same as learnt oldest first."""
    rng = random.Random(4)
    history = [(T0 + k * 5 * MIN, rng.randint(62, 70)) for k in range(200)]
    ordered, shuffled = AnomalyDetector(), AnomalyDetector()
    for k, (ts, hr) in enumerate(history):
        ordered.learn("el-1", ts, hr, 15, 5 * MIN if k else 0)
    late = T0 + 300 * 5 * MIN
    shuffled.on_sample("el-1", "band-1", late, 66, 15, 5 * MIN)  # catch-up first
    for k, (ts, hr) in reversed(list(enumerate(history))):
        shuffled.learn("el-1", ts, hr, 15, 5 * MIN if k else 0)
    got, want = shuffled._elders["el-1"], ordered._elders["el-1"]
    assert got.total == want.total + 1 == len(history)
    assert (got.counts.sum(axis=0) >= want.counts.sum(axis=0)).all()


def test_the_interval_of_the_steps_comes_from_the_caller_when_given() -> None:
    detector = AnomalyDetector()
    # 48 steps: brisk over 30 s, incidental over 5 minutes, unknown (not learnt) when 0.
    detector.on_sample("el-1", "band-1", T0, 70, 48, 30_000)
    detector.on_sample("el-1", "band-1", T0 + 30_000, 70, 48, 5 * MIN)
    detector.on_sample("el-1", "band-1", T0 + 60_000, 70, 48, 0)
    assert detector._elders["el-1"].per_band == [0, 1, 0, 0, 0, 1, 0]


def test_an_extreme_reading_after_a_low_alert_is_not_held_back() -> None:
    detector = AnomalyDetector()
    t = _settle(detector, "el-1", T0)
    detector.on_sample("el-1", "band-1", t + 5 * MIN, 100, 15)
    (low,) = detector.on_sample("el-1", "band-1", t + 10 * MIN, 101, 12)
    assert low.severity is Severity.LOW
    # Five minutes later the rate leaves the safe range: high severity at once.
    (high,) = detector.on_sample("el-1", "band-1", t + 15 * MIN, 158, 12)
    assert high.severity is Severity.HIGH
    # Then both are quiet for QUIET_MS.
    assert detector.on_sample("el-1", "band-1", t + 20 * MIN, 160, 12) == []
    assert detector.on_sample("el-1", "band-1", t + 25 * MIN, 102, 12) == []
    assert detector.on_sample("el-1", "band-1", t + 30 * MIN, 103, 12) == []  # two in a row
    assert len(detector.on_sample("el-1", "band-1", t + 46 * MIN, 104, 12)) == 1
