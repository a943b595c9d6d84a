"""Features of a candidate fall in a cane's accelerometer stream (pure numpy).

The fall signature (public device documentation and studies, see the district reference data):
free fall below 0.4-0.6 g for 150-1000 ms, an impact of 2-15 g, then at least 0.8-2 s of
stillness or an orientation change of 45° or more.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

# Impact threshold: the low end of the 2-15 g impact range of real falls.
IMPACT_G = 2.0
# Free fall: the magnitude drops below ~0.6 g while the body (and cane) is unsupported.
FREE_FALL_G = 0.6
# Stillness: within 0.1 g of 1 g (gravity only), the resting band of wearable studies.
STILL_TOL_G = 0.1
PRE_S = 4.0
POST_S = 8.0

FEATURE_NAMES = (
    "ff_min_g",
    "ff_run_s",
    "impact_g",
    "pre_std_g",
    "post_std_g",
    "post_mean_g",
    "post_still_frac",
    "post_max_g",
    "tilt_change_deg",
    "peaks_near_impact",
    "post_coverage",
)


def magnitude(samples: NDArray[np.float64]) -> NDArray[np.float64]:
    """Euclidean norm of each [x, y, z] sample, g."""
    out: NDArray[np.float64] = np.sqrt(np.einsum("ij,ij->i", samples, samples))
    return out


def impact_indices(mag: NDArray[np.float64], rate_hz: int, refractory_s: float = 3.0) -> list[int]:
    """Indices of impact peaks (local maxima >= IMPACT_G), at most one per `refractory_s`."""
    above = np.flatnonzero(mag >= IMPACT_G)
    out: list[int] = []
    gap = max(1, int(refractory_s * rate_hz))
    i = 0
    while i < len(above):
        start = above[i]
        end = start + gap
        cluster = above[(above >= start) & (above < end)]
        out.append(int(cluster[np.argmax(mag[cluster])]))
        i += len(cluster)
    return out


def _longest_run(mask: NDArray[np.bool_]) -> int:
    best = run = 0
    for flag in mask:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


def _angle_deg(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-6 or nb < 1e-6:
        return 0.0
    cos = float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))
    return math.degrees(math.acos(cos))


def fall_features(samples: NDArray[np.float64], impact: int, rate_hz: int) -> NDArray[np.float64]:
    """Feature vector (FEATURE_NAMES order) of the candidate impact at index `impact`.

    Args:
        samples: (n, 3) accelerations in g, consecutive at `rate_hz`.
        impact: index of the impact peak in `samples`.
        rate_hz: sampling rate.
    """
    mag = magnitude(samples)
    r = rate_hz
    ff = mag[max(0, impact - int(1.5 * r)) : impact + 1]
    pre = slice(max(0, impact - int(PRE_S * r)), max(0, impact - r))
    post = slice(min(len(mag), impact + r), min(len(mag), impact + int(POST_S * r)))
    post_mag = mag[post]
    pre_mag = mag[pre]
    near = mag[max(0, impact - r) : impact + r]
    pre_vec = samples[pre].mean(axis=0) if pre_mag.size else samples[: impact + 1].mean(axis=0)
    post_vec = samples[post].mean(axis=0) if post_mag.size else samples[impact:].mean(axis=0)
    expected_post = int(POST_S * r) - r
    return np.array(
        [
            float(ff.min()) if ff.size else 1.0,
            _longest_run(ff < FREE_FALL_G) / r,
            float(mag[impact]),
            float(pre_mag.std()) if pre_mag.size else 0.0,
            float(post_mag.std()) if post_mag.size else 0.0,
            float(post_mag.mean()) if post_mag.size else 1.0,
            float(np.mean(np.abs(post_mag - 1.0) < STILL_TOL_G)) if post_mag.size else 0.0,
            float(post_mag.max()) if post_mag.size else 1.0,
            _angle_deg(pre_vec, post_vec),
            float(
                np.sum(
                    (near[1:-1] >= IMPACT_G) & (near[1:-1] >= near[:-2]) & (near[1:-1] >= near[2:])
                )
            )
            if near.size > 2
            else 0.0,
            min(1.0, post_mag.size / expected_post) if expected_post > 0 else 0.0,
        ],
        dtype=np.float64,
    )
