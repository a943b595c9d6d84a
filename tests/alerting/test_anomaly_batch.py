"""The anomaly model: its isolation forests measured against scikit-learn's, and batched
scoring deciding exactly as scoring one sample at a time."""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from dataclasses import replace

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from alerting.detectors import anomaly
from alerting.detectors.anomaly import (
    EXTREME_HIGH_BPM,
    EXTREME_LOW_BPM,
    MAX_ROBUST_Z,
    QUIET_MS,
    SCORE_MARGIN,
    AnomalyDetector,
)
from alerting.detectors.iforest import (
    NODE_BYTES,
    OFFSET_ROWS,
    CompiledForest,
    ForestPool,
    fit_forest,
)
from alerting.geo import local_hour

T0 = 1_780_000_000_000
Sample = tuple[str, str, int, float, float]


def _reference(stream: list[Sample], min_samples: int, refit_every: int) -> list[tuple[str, int]]:
    """The per-message detector: one forest call per sample, median over history."""
    rows: dict[str, deque[tuple[float, ...]]] = {}
    models: dict[str, CompiledForest] = {}
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
            score = float(models[elder].decision(np.array([row]))[0])
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
            models[elder] = fit_forest(np.array(history), trees=50, contamination=0.005, seed=0)
            since[elder] = 0
    return out


def _stream(n: int, elders: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    out: list[Sample] = []
    for k in range(n):
        e = rng.randrange(elders)
        hr = rng.gauss(68 + 3 * e, 5)
        if rng.random() < 0.015:
            hr = rng.choice([rng.uniform(95, 130), rng.uniform(30, 45), 160.0])
        out.append(
            (f"el-{e}", f"band-{e}", T0 + k * 20_000, round(hr, 1), rng.choice([0.0, 3.0, 80.0]))
        )
    return out


def _cloud(rng: np.random.Generator, n: int) -> np.ndarray:
    """An elder's usual (heart rate, log steps, hour sin, hour cos): HR tied to activity."""
    steps = rng.gamma(1.5, 1.0, n)
    hour = rng.uniform(0, 24, n)
    hr = 62 + 6 * steps + rng.normal(0, 3, n)
    return np.column_stack(
        [hr, steps, np.sin(hour / 24 * 2 * np.pi), np.cos(hour / 24 * 2 * np.pi)]
    )


def _auc(normal: np.ndarray, outliers: np.ndarray) -> float:
    """P(an outlier scores below a normal row): the ROC area of `-decision`."""
    below = (outliers[:, None] < normal[None, :]).mean()
    ties = (outliers[:, None] == normal[None, :]).mean()
    return float(below + ties / 2)


@pytest.mark.parametrize("n", [200, 1000, 3000], ids=["first-fit", "mid", "full-history"])
def test_forest_separates_outliers_as_scikit_learn_does(n: int) -> None:
    """Same data, both fitters: the same ranking quality and the same share of rows flagged."""
    rng = np.random.default_rng(n)
    x = _cloud(rng, n)
    normal = _cloud(rng, 2000)
    # Unusual for this elder: a racing heart at rest, a slow one while walking.
    k = 300
    rest = rng.gamma(1.5, 0.2, k)
    outliers = _cloud(rng, k)
    outliers[: k // 2, 0] = 100 + rng.normal(0, 4, k // 2)
    outliers[: k // 2, 1] = rest[: k // 2]
    outliers[k // 2 :, 0] = 55 + rng.normal(0, 3, k - k // 2)
    outliers[k // 2 :, 1] = 3 + rest[k // 2 :]
    own_auc, ref_auc, own_flagged, ref_flagged = [], [], [], []
    for seed in range(3):
        own = fit_forest(x, trees=50, contamination=0.005, seed=seed)
        ref = IsolationForest(n_estimators=50, contamination=0.005, random_state=seed).fit(x)
        own_auc.append(_auc(own.decision(normal), own.decision(outliers)))
        ref_auc.append(_auc(ref.decision_function(normal), ref.decision_function(outliers)))
        own_flagged.append(float((own.decision(normal) < -SCORE_MARGIN).mean()))
        ref_flagged.append(float((ref.decision_function(normal) < -SCORE_MARGIN).mean()))
    assert min(ref_auc) > 0.9  # the data has outliers a forest can find
    assert np.mean(own_auc) >= np.mean(ref_auc) - 0.02, (own_auc, ref_auc)
    # False alarms on the elder's usual readings: no more than scikit-learn's, plus noise.
    assert np.mean(own_flagged) <= np.mean(ref_flagged) + 0.002, (own_flagged, ref_flagged)


def test_offset_is_the_contamination_quantile_of_the_training_rows() -> None:
    rng = np.random.default_rng(4)
    small = _cloud(rng, 600)
    forest = fit_forest(small, trees=50, contamination=0.01, seed=1)
    # Every row is scored when there are few: exactly the quantile.
    assert int((forest.decision(small) < 0).sum()) == 6
    big = _cloud(rng, 3000)
    forest = fit_forest(big, trees=50, contamination=0.01, seed=1)
    # Beyond OFFSET_ROWS, evenly spaced rows place it: close to 1 % of all rows.
    assert OFFSET_ROWS < 3000
    assert 0.003 <= float((forest.decision(big) < 0).mean()) <= 0.02


def _c(count: int) -> float:
    """c(n) of Liu et al. (2008): the average path length of an unsuccessful BST search."""
    if count <= 1:
        return 0.0
    if count == 2:
        return 1.0
    return float(2 * (np.log(count - 1) + np.euler_gamma) - 2 * (count - 1) / count)


def test_forest_structure_and_determinism() -> None:
    rng = np.random.default_rng(8)
    x = _cloud(rng, 180)  # fewer rows than max_samples: every tree grows on all of them
    forest = fit_forest(x, trees=20, contamination=0.005, seed=3)
    assert forest.steps <= 8  # ceil(log2(180))
    x32 = x.astype(np.float32).astype(np.float64)
    is_leaf = forest.left == np.arange(forest.left.size)
    for root in forest.roots:
        depth = {int(root): 1}
        frontier = [int(root)]
        while frontier:
            v = frontier.pop()
            if not is_leaf[v]:
                for child in (int(forest.left[v]), int(forest.right[v])):
                    depth[child] = depth[v] + 1
                    frontier.append(child)
        # The training rows routed down the tree fill its leaves exactly as recorded:
        # leaf_depth = depth + c(rows in the leaf) - 1, as scikit-learn scores a leaf.
        node = np.full(len(x), root)
        for _ in range(forest.steps):
            go_left = x32[np.arange(len(x)), forest.feature[node]] <= forest.threshold[node]
            node = np.where(go_left, forest.left[node], forest.right[node])
        assert is_leaf[node].all()
        leaves, held = np.unique(node, return_counts=True)
        assert {int(v) for v in leaves} == {v for v in depth if is_leaf[v]}  # no empty leaf
        for leaf, count in zip(leaves, held, strict=True):
            want = depth[int(leaf)] + _c(int(count)) - 1
            assert forest.leaf_depth[leaf] == pytest.approx(want)
    again = fit_forest(x, trees=20, contamination=0.005, seed=3)
    assert np.array_equal(again.threshold, forest.threshold)
    other = fit_forest(x, trees=20, contamination=0.005, seed=4)
    assert not np.array_equal(other.decision(x), forest.decision(x))
    # Grown on one row (c(1) = 0): scored as scikit-learn scores it, not NaN.
    one = x[:1]
    probe = np.vstack([one, one + 40.0])
    ref = IsolationForest(n_estimators=5, contamination=0.005, random_state=0).fit(one)
    lone = fit_forest(one, trees=5, contamination=0.005, seed=0)
    assert np.array_equal(lone.decision(probe), ref.decision_function(probe))
    with pytest.raises(ValueError, match="at least one row"):
        fit_forest(x[:0], trees=5, contamination=0.005, seed=0)
    with pytest.raises(ValueError, match="contamination"):
        fit_forest(x, trees=5, contamination=0.7, seed=0)


def test_pool_scores_each_row_by_its_own_forest() -> None:
    rng = np.random.default_rng(2)
    x = _cloud(rng, 700)
    probe = _cloud(rng, 400)
    probe[::7, 0] += rng.normal(0, 30, len(probe[::7]))
    forest = fit_forest(x, trees=50, contamination=0.005, seed=0)
    expected = forest.decision(probe)
    pool = ForestPool(50)
    other = pool.add(fit_forest(x[::-1], trees=50, contamination=0.005, seed=1))
    mine = pool.add(forest)
    pool.free(other)  # its slot is free; the survivor must still score the same
    assert np.array_equal(pool.decision([mine] * len(probe), probe), expected)
    # Interleaved rows of two forests, each by its own, across slot reuse and arena growth.
    third = fit_forest(x[::2], trees=50, contamination=0.005, seed=2)
    for _ in range(3):
        pool.add(fit_forest(x[1::2], trees=50, contamination=0.005, seed=5))
    theirs = pool.add(third)
    ids = [mine if k % 2 else theirs for k in range(len(probe))]
    want = np.where(np.arange(len(probe)) % 2 == 1, expected, third.decision(probe))
    assert np.array_equal(pool.decision(ids, probe), want)


def test_pool_relies_on_the_fit_placing_right_children_after_left_ones() -> None:
    forest = fit_forest(_cloud(np.random.default_rng(3), 300), trees=10, contamination=0.01, seed=0)
    inner = forest.left != forest.right
    assert inner.any()
    assert np.array_equal(forest.right[inner], forest.left[inner] + 1)
    swapped = replace(forest, left=forest.right, right=forest.left)
    with pytest.raises(ValueError, match="right child"):
        ForestPool(10).add(swapped)


def test_fits_wait_for_the_budget_and_z_scores_judge_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a restart every elder needs a forest at once: fits take turns, nothing is lost."""
    monkeypatch.setattr(anomaly, "FIT_BURST_S", 1e-9)
    monkeypatch.setattr(anomaly, "FIT_SHARE", 1e-9)
    detector = AnomalyDetector(min_samples=150)
    rng = random.Random(1)
    elders = [f"el-{i}" for i in range(6)]
    for e in elders:  # stored history, as warm-up restores it
        for k in range(200):
            detector.learn(e, T0 + k * 30_000, rng.gauss(70, 4), rng.choice([0, 3, 80]))
    ts = T0 + 200 * 30_000
    for e in elders:
        assert detector.on_sample(e, f"band-{e}", ts, 71.0, 3) == []
    assert detector.fits == 1  # the first fit spent the whole budget
    assert detector.waiting() == len(elders) - 1
    # An elder still waiting for a forest is judged by the robust z-score meanwhile.
    waiting = elders[-1]
    found = detector.on_sample(waiting, f"band-{waiting}", ts + 30_000, 118.0, 0)
    assert [f.device_id for f in found] == [f"band-{waiting}"]
    monkeypatch.setattr(anomaly, "FIT_SHARE", 1e9)  # time to spare again: the tick fits
    detector.fit_waiting()
    assert detector.waiting() == 0
    assert detector.fits == len(elders)


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


def test_compact_history_keeps_the_rows_and_the_robust_z_of_a_plain_one() -> None:
    """Contract heart rates are integers: the float32 ring and sorted array give the forest
    the rows a float64 history gives it (after the trees' float32 cast) and the z-score the
    same verdicts, through growth and 2,000 rows past the 3,000-row wrap."""
    rng = random.Random(5)
    detector = AnomalyDetector()
    plain: deque[tuple[float, float, float, float]] = deque(maxlen=3000)
    for k in range(5000):
        ts = T0 + k * 30_000
        hr = rng.choice([rng.randint(55, 95), rng.randint(30, 180)])
        steps = rng.choice([0, 0, 4, 30, 120])
        detector.learn("el-1", ts, hr, steps)
        angle = 2 * math.pi * local_hour(ts) / 24
        plain.append((hr, math.log1p(steps), math.sin(angle), math.cos(angle)))
        if k in (15, 16, 17, 700, 2999, 3000, 3001, 4999):
            elder = detector._elders["el-1"]
            want = np.array(plain)
            got = elder.ordered()
            assert got.shape == want.shape
            assert np.array_equal(got.astype(np.float32), want.astype(np.float32))
            hrs = np.sort(want[:, 0])
            assert np.array_equal(elder.sorted_hr[: elder.count], hrs.astype(np.float32))
            median = float(np.median(hrs))
            mad = max(float(np.median(np.abs(hrs - median))), 2.0)
            for probe in (20, 40, 60, 72, 90, 110, 140, 200):
                z = abs(probe - median) / (1.4826 * mad)
                assert elder.z_unusual(probe) == (z > MAX_ROBUST_Z), (k, probe)
    assert detector._elders["el-1"].hr.nbytes == 4 * 3000


def test_forests_stay_within_their_memory_budget_and_the_rest_is_judged_by_z_scores(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A budget for about two forests and five elders: at most one forest past the budget (the
    largest seen decides the room check), the others judged by the z-score and the fixed
    limits, a warning says so, and a fitted elder still refits at the cap."""
    rng = random.Random(9)
    probe = fit_forest(_cloud(np.random.default_rng(0), 250), trees=50, contamination=0.005, seed=0)
    budget = int(2.5 * probe.feature.size * NODE_BYTES)
    detector = AnomalyDetector(refit_every=300, forest_budget_bytes=budget)
    elders = [f"el-{i}" for i in range(5)]
    for e in elders:
        for k in range(250):
            detector.learn(e, T0 + k * 30_000, round(rng.gauss(70, 4)), rng.choice([0, 3, 80]))
    ts = T0 + 250 * 30_000
    with caplog.at_level(logging.WARNING, logger="alerting.detectors.anomaly"):
        for e in elders:
            assert detector.on_sample(e, f"band-{e}", ts, 71, 3) == []
    fitted = len(detector.pool)
    assert 1 <= fitted <= 3
    assert detector.refused == len(elders) - fitted
    assert detector.pool.live_nodes() * NODE_BYTES <= budget + probe.feature.size * NODE_BYTES
    assert "memory budget" in caplog.text and "ALERTING_ANOMALY_FOREST_MIB" in caplog.text
    refused = elders[-1]
    assert detector._elders[refused].forest is None
    # A refused elder's racing heart at rest is still found (robust z-score).
    found = detector.on_sample(refused, f"band-{refused}", ts + 30_000, 118, 0)
    assert [f.device_id for f in found] == [f"band-{refused}"]
    # The first elder refits after refit_every samples although the budget is full.
    first = detector._elders[elders[0]]
    before = first.forest
    for k in range(300):
        detector.on_sample(elders[0], "band-el-0", ts + (k + 2) * 30_000, 70 + k % 5, 3)
    assert first.forest is not None and first.forest != before
    assert len(detector.pool) == fitted
    assert detector.pool.live_nodes() * NODE_BYTES <= budget + probe.feature.size * NODE_BYTES
    # The tally the metrics report follows the arrays.
    history = sum(
        e.hr.nbytes + e.lsteps.nbytes + e.hour.nbytes + e.sorted_hr.nbytes
        for e in detector._elders.values()
    )
    assert detector.memory_bytes() == history + detector.pool.nbytes()


def test_no_forest_budget_means_z_scores_only() -> None:
    detector = AnomalyDetector(forest_budget_bytes=0)
    for k in range(250):
        detector.learn("el-1", T0 + k * 30_000, 70 + k % 3, 3)
    assert detector.on_sample("el-1", "band-1", T0 + 250 * 30_000, 71, 3) == []
    assert len(detector.pool) == 0 and detector.refused == 1


def test_refits_reuse_freed_slots_and_the_arena_stops_growing() -> None:
    """Ten elders refitted 30 times each (new forest in, old one out, as the detector does):
    the arena reaches its size in the first round and stays there; every forest still scores
    its rows as it would alone; nothing is ever moved."""
    rng = np.random.default_rng(12)
    data = [_cloud(rng, 300 + 40 * k) for k in range(10)]
    probe = _cloud(rng, 50)
    pool = ForestPool(50)
    ids = [pool.add(fit_forest(x, trees=50, contamination=0.005, seed=0)) for x in data]
    sizes = []
    for round_ in range(30):
        for k, x in enumerate(data):
            forest = fit_forest(x, trees=50, contamination=0.005, seed=round_ + 1)
            new = pool.add(forest)
            pool.free(ids[k])
            ids[k] = new
            if k == 3:
                assert np.array_equal(
                    pool.decision([new] * len(probe), probe), forest.decision(probe)
                )
        sizes.append(pool.nbytes())
        assert len(pool) == 10
    assert len(set(sizes)) == 1, sizes
    # One slot more than there are forests: each refit takes the slot the last one freed.
    slot = max(pool._slots.values())
    assert pool.live_nodes() == 10 * slot
    assert pool._size == 11 * slot
