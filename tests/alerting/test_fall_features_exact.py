"""The fall path's quick helpers give numpy's own results bit for bit.

The fall model was trained and evaluated on features computed with numpy's reductions
(`x.std()`, `a.mean(axis=0)`, `np.linalg.norm`, `np.clip`, a cumulative-sum moving average
over the whole segment). The detector now calls cheaper equivalents; a verdict may only
change if a feature does, so these must be equal, not close.
"""

from __future__ import annotations

import math

import numpy as np

from alerting.fall_features import (
    SMOOTH_S,
    angle_deg,
    magnitude,
    mean_vector,
    smooth,
    std,
)


def _smooth_reference(mag: np.ndarray, rate_hz: float) -> np.ndarray:
    k = max(1, round(SMOOTH_S * rate_hz))
    if k == 1 or mag.size == 0:
        return mag.astype(np.float64, copy=True)
    csum = np.concatenate(([0.0], np.cumsum(mag)))
    idx = np.arange(mag.size)
    lo = np.clip(idx - k // 2, 0, mag.size)
    hi = np.clip(idx - k // 2 + k, 0, mag.size)
    out: np.ndarray = (csum[hi] - csum[lo]) / (hi - lo)
    return out


def _angle_reference(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-6 or nb < 1e-6:
        return 0.0
    return math.degrees(math.acos(float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))))


def test_helpers_equal_numpy_bit_for_bit() -> None:
    rng = np.random.default_rng(11)
    for _ in range(3000):
        n = int(rng.integers(1, 1200))
        scale = float(rng.choice([1e-3, 1.0, 8.0]))
        samples = rng.normal(0.0, 1.0, (n, 3)) * scale + rng.normal(0.0, 1.0, 3)
        mag = magnitude(samples)
        assert std(mag) == float(mag.std())
        assert np.array_equal(mean_vector(samples), samples.mean(axis=0))
        rate = int(rng.choice([10, 20, 25, 50, 100, 200]))
        assert np.array_equal(smooth(mag, rate), _smooth_reference(mag, rate))
        a, b = samples[0], samples[-1]
        assert angle_deg(a, b) == _angle_reference(a, b)
    # Parallel and opposite vectors (cosine rounded past +-1 and clipped), and a null one.
    v = np.array([0.1, 0.2, 0.97])
    assert angle_deg(v, 3 * v) == _angle_reference(v, 3 * v)
    assert angle_deg(v, -v) == _angle_reference(v, -v)
    assert angle_deg(v, np.zeros(3)) == 0.0
