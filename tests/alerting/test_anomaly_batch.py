"""Batched anomaly scoring decides exactly as scikit-learn scoring one sample at a time."""

from __future__ import annotations

import math
import random
from collections import deque

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from alerting.detectors.anomaly import (
    EXTREME_HIGH_BPM,
    EXTREME_LOW_BPM,
    MAX_ROBUST_Z,
    QUIET_MS,
    SCORE_MARGIN,
    AnomalyDetector,
)
from alerting.detectors.iforest import ForestPool, compile_forest
from alerting.geo import local_hour

T0 = 1_780_000_000_000
Sample = tuple[str, str, int, float, float]


def _reference(stream: list[Sample], min_samples: int, refit_every: int) -> list[tuple[str, int]]:
    """The per-message detector: one `decision_function` call per sample, median over history."""
    rows: dict[str, deque[tuple[float, ...]]] = {}
    models: dict[str, IsolationForest] = {}
    since: dict[str, int] = {}
    last: dict[str, int] = {}
    out = []
    for elder, device, ts, hr, steps in stream:
        history = rows.setdefault(elder, deque(maxlen=3000))
        angle = 2 * math.pi * local_hour(ts) / 24
        row = (hr, math.log1p(max(0.0, steps)), math.sin(angle), math.cos(angle))
        extreme = hr < EXTREME_LOW_BPM or hr > EXTREME_HIGH_BPM
        unusual = extreme
        if not extreme and elder in models:
            score = float(models[elder].decision_function(np.array([row]))[0])
            hrs = np.array([r[0] for r in history])
            median = float(np.median(hrs))
            mad = max(float(np.median(np.abs(hrs - median))), 2.0)
            z = abs(hr - median) / (1.4826 * mad)
            unusual = score < -SCORE_MARGIN or z > MAX_ROBUST_Z
        if unusual and ts - last.get(elder, -(10**15)) >= QUIET_MS:
            last[elder] = ts
            out.append((device, ts))
        history.append(row)
        since[elder] = since.get(elder, 0) + 1
        if len(history) >= min_samples and (elder not in models or since[elder] >= refit_every):
            models[elder] = IsolationForest(
                n_estimators=50, contamination=0.005, random_state=0
            ).fit(np.array(history))
            since[elder] = 0
    return out


def _stream(n: int, elders: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        e = rng.randrange(elders)
        hr = rng.gauss(68 + 3 * e, 5)
        if rng.random() < 0.015:
            hr = rng.choice([rng.uniform(95, 130), rng.uniform(30, 45), 160.0])
        out.append((f"el-{e}", f"band-{e}", T0 + k * 20_000, round(hr, 1), rng.choice([0, 3, 80])))
    return out


@pytest.mark.parametrize("n", [120, 700, 3000], ids=["small", "mid", "full"])
def test_compiled_forest_scores_equal_scikit_learn_bit_for_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    x = np.column_stack(
        [rng.normal(72, 6, n), rng.uniform(0, 3, n), rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)]
    )
    model = IsolationForest(n_estimators=50, contamination=0.005, random_state=0).fit(x)
    probe = np.column_stack(
        [
            rng.normal(72, 25, 800),
            rng.uniform(0, 5, 800),
            rng.uniform(-1, 1, 800),
            rng.uniform(-1, 1, 800),
        ]
    )
    expected = model.decision_function(probe)
    assert np.array_equal(compile_forest(model).decision(probe), expected)
    pool = ForestPool(50)
    other = pool.add(compile_forest(IsolationForest(n_estimators=50).fit(x[::-1])))
    mine = pool.add(compile_forest(model))
    pool.free(other)  # compacts: the survivor moves and must still score the same
    assert np.array_equal(pool.decision([mine] * len(probe), probe), expected)


def test_batched_triggers_equal_the_per_message_detector() -> None:
    stream = _stream(2400, 4, seed=3)
    expected = _reference(stream, min_samples=150, refit_every=400)
    assert len(expected) >= 10  # the stream exercises extreme, forest and z triggers

    detector = AnomalyDetector(min_samples=150, refit_every=400)
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
            # Stamped with the identity of the message that carried the sample.
            ts = trigger.event_ts + 5
            assert trigger.event_seq == (ts - T0) // 20_000
            got.append((trigger.device_id, ts))
        i += size
    assert got == expected
    assert detector.pending() == 0


def test_immediate_mode_equals_the_per_message_detector() -> None:
    stream = _stream(900, 2, seed=5)
    detector = AnomalyDetector(min_samples=150, refit_every=300)
    got = [(f.device_id, f.event_ts) for s in stream for f in detector.on_sample(*s)]
    assert got == _reference(stream, min_samples=150, refit_every=300)
