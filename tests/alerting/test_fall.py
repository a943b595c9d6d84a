"""The fall detector and its shipped model on simulated cane episodes (seeds 900_000+).

The model is trained on real recordings only (evaluation.fall_training); these episodes come
from the simulator and check the streaming detector around it.
"""

from __future__ import annotations

import numpy as np
import pytest

from alerting.detectors import FallDetector
from alerting.fall_features import accel_array
from alerting.fall_model import load_fall_model
from alerting.model import Trigger
from firmware_sim.cane import cane_windows, episode
from gateway import AlertKind, CaneTelemetry, DeviceType, Severity

T0 = 1_764_316_800_000
TEST_SEEDS = range(900_000, 900_040)


def _stream(det: FallDetector, kind: str, seed: int) -> tuple[list[Trigger], int]:
    """Send an episode window by window; returns the triggers and the onset ts."""
    ep = episode(kind, np.random.default_rng(seed), 50)
    found: list[Trigger] = []
    ts = T0
    for i, window in enumerate(cane_windows(ep.samples, 50)):
        ts = T0 + (i + 1) * 2000
        msg = CaneTelemetry(
            device_id="cane-1",
            type=DeviceType.CANE,
            seq=i,
            ts=ts,
            rate_hz=50,
            accel_g=tuple(tuple(map(float, s)) for s in window),
        )  # type: ignore[misc]
        found += [f for f in det.on_window(msg) if isinstance(f, Trigger)]
    found += [f for f in det.tick(ts + 60_000) if isinstance(f, Trigger)]
    onset_ts = T0 + int((ep.onset_index + 1) * 20)
    return found, onset_ts


@pytest.fixture(scope="module")
def detector_factory() -> object:
    model = load_fall_model()
    return lambda: FallDetector(model.classifier, threshold=model.threshold)


# The model is trained on real recordings only, never on the simulator. On these 40 seeds of
# the simulator fitted to real recordings, falls that end lying down are raised 39 times (35
# by the model, 4 as long lies) and falls followed by getting up 34 times (by the model
# alone): the bounds are floors for the streaming path, not a measure of the model (that is
# `python -m evaluation.fall_training cv`).
@pytest.mark.parametrize(("kind", "least"), [("fall", 0.95), ("fall_recovery", 0.75)])
def test_simulated_falls_are_raised(detector_factory: object, kind: str, least: float) -> None:
    hits = 0
    for seed in TEST_SEEDS:
        found, onset_ts = _stream(detector_factory(), kind, seed)  # type: ignore[operator]
        assert all(t.kind is AlertKind.FALL for t in found)
        by_model = [t for t in found if t.severity is Severity.CRITICAL]
        if by_model:
            (t,) = by_model
            # Dated at the largest 0.1 s-averaged peak near the impact: the simulator's impact
            # is a single-sample spike, so that may be the cane strike just before it.
            assert -1_000 <= t.event_ts - onset_ts <= 2_000
            assert "impact" in t.reason
        hits += bool(found)
    assert hits >= least * len(TEST_SEEDS)


# The simulator's "drop_cane" (a cane let go that lies flat on the floor for 2-8 s before it
# is picked up) is left out: a model trained on real falls cannot tell it from a fall within
# the 5 s it looks at, and real falls look just like it.
@pytest.mark.parametrize("kind", ["sit_hard", "stumble", "walk", "rest"])
def test_fall_like_movements_are_not_falls(detector_factory: object, kind: str) -> None:
    false = sum(bool(_stream(detector_factory(), kind, s)[0]) for s in TEST_SEEDS)  # type: ignore[operator]
    assert false <= 1


def test_trigger_comes_from_post_impact_windows_not_a_timer(detector_factory: object) -> None:
    # The first seed from 900_100 whose fall the model raises: this is about when, not whether.
    for seed in range(900_100, 900_120):
        det = detector_factory()  # type: ignore[operator]
        ep = episode("fall", np.random.default_rng(seed), 50)
        windows = cane_windows(ep.samples, 50)
        impact_window = (ep.onset_index + 60) // 100
        raised_at = None
        for i, window in enumerate(windows):
            msg = CaneTelemetry(
                device_id="cane-1",
                type=DeviceType.CANE,
                seq=i,
                ts=T0 + (i + 1) * 2000,
                rate_hz=50,
                accel_g=tuple(tuple(map(float, s)) for s in window),
            )  # type: ignore[misc]
            if det.on_window(msg):
                raised_at = i
                break
        if raised_at is not None:
            break
    assert raised_at is not None
    # Raised once 7 s after the impact are in (2 s to find the peak, 5 s after it): 3-6
    # windows later, far within 30 s, and never before the post-impact windows arrived.
    assert 3 <= raised_at - impact_window <= 6


def test_cane_hint_alone_does_not_raise(detector_factory: object) -> None:
    det = detector_factory()  # type: ignore[operator]
    assert det.on_hint("cane-1", T0) == []
    assert det.tick(T0 + 60_000) == []


def test_fall_right_after_an_overlapping_window_is_found(detector_factory: object) -> None:
    # A cane stamps each window when it sends it: the first window of an episode may come
    # less than 2 s after the previous one, so the two overlap in time.
    det = detector_factory()  # type: ignore[operator]
    rng = np.random.default_rng(900_200)
    walk = cane_windows(episode("walk", rng, 50).samples, 50)
    fall = cane_windows(episode("fall", rng, 50).samples, 50)
    stamps = [T0 + 2000 * (i + 1) for i in range(len(walk))]
    last = stamps[-1] + 850
    stamps += [last + 2000 * i for i in range(len(fall))]
    found = []
    for i, (ts, window) in enumerate(zip(stamps, walk + fall, strict=True)):
        msg = CaneTelemetry(
            device_id="cane-1",
            type=DeviceType.CANE,
            seq=i,
            ts=ts,
            rate_hz=50,
            accel_g=tuple(tuple(map(float, s)) for s in window),
        )  # type: ignore[misc]
        found += det.on_window(msg)
    assert len(found) == 1 and found[0].kind is AlertKind.FALL


def test_accel_array_is_the_window_as_numpy_gives_it() -> None:
    rng = np.random.default_rng(4)
    accel = tuple(tuple(float(v) for v in row) for row in rng.normal(0, 1, (137, 3)))
    got = accel_array(accel)
    assert got.shape == (137, 3) and got.dtype == np.float64
    assert np.array_equal(got, np.asarray(accel, dtype=np.float64))
    with pytest.raises(ValueError, match="4 values for 2 samples"):
        accel_array(((0.1, 0.2, 1.0), (0.3,)))
