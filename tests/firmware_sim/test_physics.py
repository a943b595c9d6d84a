"""Table tests of the pure physics: cane movements drawn from real ones, wandering, smoke."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.calibration import PARAMS
from firmware_sim import (
    CANE_KINDS,
    FALL_KINDS,
    cane_episode,
    cane_windows,
    sample_wander,
    wander_path,
)
from firmware_sim.cane import calibration
from firmware_sim.smoke import ALARM_THRESHOLD_DB_M, make_source, reading

RATE = 50


def _physical(kind: str, n: int = 200) -> np.ndarray:
    from evaluation.calibration import physical

    rng = np.random.default_rng(31_337)
    return np.array([physical(cane_episode(kind, rng), RATE) for _ in range(n)])


def _real(group: str, name: str, q: float) -> float:
    """A quantile of a real movement's parameter, as fitted (firmware_sim/cane_calibration.json)."""
    params = calibration()[group]
    return float(np.interp(q, params["_levels"], params[name]))


@pytest.mark.parametrize(
    ("group", "name"),
    [
        (group, name)
        for group in ("fall", "sit_hard", "stumble")
        for name in ("free_fall_s", "peak_g", "dip_g", "rest_level_g")
        if (group, name) != ("stumble", "rest_level_g")  # a stumble walks on: no rest
    ],
)
def test_movements_are_drawn_from_the_real_recordings(group: str, name: str) -> None:
    """The simulated median of each parameter lies within the real interquartile range."""
    values = _physical(group)[:, PARAMS.index(name)]
    assert _real(group, name, 0.25) <= float(np.nanmedian(values)) <= _real(group, name, 0.75)


@pytest.mark.parametrize("kind", ["sit_hard", "stumble"])
def test_look_alikes_are_not_built_to_miss_the_fall_signature(kind: str) -> None:
    """Like real ones, some hard sits and stumbles unload below 0.6 g before their impact."""
    free_fall_s = _physical(kind)[:, PARAMS.index("free_fall_s")]
    assert float(np.mean(free_fall_s > 0)) >= 0.2


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("kind", sorted(FALL_KINDS))
def test_falls_start_walking_and_last_twenty_seconds_after_the_impact(kind: str, seed: int) -> None:
    samples = cane_episode(kind, np.random.default_rng(seed))
    mag = np.linalg.norm(samples, axis=1)
    assert mag[: 2 * RATE].std() > 0.05 and mag[: 3 * RATE].min() > 0.5
    impact = int(np.argmax(mag))
    assert 1.7 <= mag.max() <= 16.0 * np.sqrt(3)
    assert (len(samples) - impact) / RATE >= 20


@pytest.mark.parametrize("kind", CANE_KINDS)
def test_episodes_are_whole_windows_and_clipped(kind: str) -> None:
    samples = cane_episode(kind, np.random.default_rng(1))
    assert samples.ndim == 2 and samples.shape[1] == 3
    assert len(samples) % (2 * RATE) == 0
    assert np.abs(samples).max() <= 16.0
    windows = cane_windows(samples, RATE)
    assert len(windows) == len(samples) // 100 and all(w.shape == (100, 3) for w in windows)
    assert np.array_equal(np.concatenate(windows), samples)


def test_walk_oscillates_and_rest_is_still_one_g() -> None:
    rng = np.random.default_rng(5)
    walk = np.linalg.norm(cane_episode("walk", rng), axis=1)
    rest = np.linalg.norm(cane_episode("rest", rng), axis=1)
    spectrum = np.abs(np.fft.rfft(walk - walk.mean()))
    peak_hz = np.fft.rfftfreq(len(walk), 1 / RATE)[np.argmax(spectrum)]
    assert 0.7 <= peak_hz <= 2.1 and walk.std() > 0.1
    assert abs(rest.mean() - 1.0) < 0.02 and rest.std() < 0.02


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown cane episode"):
        cane_episode("jump", np.random.default_rng(0))


def test_cane_windows_drop_a_partial_tail() -> None:
    samples = np.zeros((250, 3))
    assert [len(w) for w in cane_windows(samples, 50)] == [100, 100]


def test_wandering_distance_distribution() -> None:
    rng = np.random.default_rng(11)
    found_m = []
    for _ in range(1500):
        pattern, target_m = sample_wander(rng)
        found_m.append(float(np.linalg.norm(wander_path(pattern, target_m, rng)[-1])))
    d = np.array(found_m)
    assert 620 <= np.median(d) <= 800
    assert 0.75 <= (d <= 2000).mean() <= 0.85
    assert 0.92 <= (d <= 5800).mean() <= 0.98


@pytest.mark.parametrize("pattern", ["random", "lapping", "direct"])
def test_wander_paths_follow_the_grid(pattern: str) -> None:
    path = wander_path(pattern, 900.0, np.random.default_rng(2))
    steps = np.diff(path, axis=0)
    # Street grid: every step runs east-west or north-south.
    assert np.all(np.min(np.abs(steps), axis=1) < 1e-6)
    assert np.linalg.norm(path[-1]) == pytest.approx(900.0, abs=15.0)


def _curve(kind: str, seed: int) -> np.ndarray:
    src = make_source(kind, 0, np.random.default_rng(seed))
    return np.array(
        [reading(t * 1000, [src], base_db_m=0.002, ambient_c=22.0) for t in range(0, 3600, 5)]
    )


@pytest.mark.parametrize("seed", range(10))
def test_fire_keeps_rising_past_the_alarm_threshold(seed: int) -> None:
    curve = _curve("fire", seed)
    smoke, temp = curve[:, 0], curve[:, 1]
    crossing = int(np.argmax(smoke >= ALARM_THRESHOLD_DB_M))
    assert 0 < crossing * 5 <= 300  # alarm within five minutes
    ten_min = crossing + 120
    assert smoke[ten_min] > 10 * ALARM_THRESHOLD_DB_M and temp[ten_min] > temp[0] + 10
    assert np.all(np.diff(smoke[: crossing + 60]) >= 0)


def test_cooking_and_steam_peak_then_decay() -> None:
    alarms = {"cooking": 0, "steam": 0}
    for kind in alarms:
        for seed in range(300):
            smoke, temp = _curve(kind, seed).T
            peak = int(np.argmax(smoke))
            assert smoke[-1] < 0.5 * smoke[peak] + 0.002  # it decays within the hour
            assert temp.max() - 22.0 < 5.0  # no fire-like heat
            alarms[kind] += bool(smoke.max() >= ALARM_THRESHOLD_DB_M)
    # Data README: 1–11 % of cooking events alarm; steam is a larger nuisance share.
    assert 0.01 <= alarms["cooking"] / 300 <= 0.11
    assert alarms["steam"] > alarms["cooking"]
