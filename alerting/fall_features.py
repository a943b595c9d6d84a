"""Features of a candidate fall impact in an accelerometer stream (pure numpy).

Every feature is built to mean the same at 20-200 Hz and under a constant sensor offset of a
few tenths of a g, because canes sample at 10-200 Hz (contract §1) and cheap MEMS parts sit
0.1-0.2 g off at rest (real waist sensors read 0.82-0.86 g or 1.10-1.16 g lying still):

- the magnitude is first averaged over `SMOOTH_S` (a 0.1 s box, the bandwidth a 20 Hz part
  keeps), so peaks, dips and jerk do not grow with the sampling rate;
- levels are relative to the wearer's own pre-impact median (`baseline`), never to 1 g;
- rest is a small local spread of the magnitude, which an offset does not change;
- orientation is the angle between the mean acceleration vectors before and after.

Windows (Bourke et al., Gait & Posture 2007; SisFall, Sucerquia et al., Sensors 2017): falls
show a short unloading of at most ~1 s, an impact, then a changed posture and less movement
within a few seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain

import numpy as np
from numpy.typing import NDArray

# A candidate impact: one raw sample at or above 1.6 g. The 0.1 s-averaged peak of 95 % of
# SisFall's waist falls is above 2.2 g (soft mattresses, 1.74 g for fainting while seated),
# so 1.6 g keeps every fall and leaves the model to reject walking and sitting peaks.
IMPACT_G = 1.6
SMOOTH_S = 0.1
PRE_S = 3.0
POST_S = 5.0
# A candidate is re-centred on the largest averaged peak from 0.5 s before to 2 s after its
# first crossing, so that a stream cut into windows and a whole recording agree; crossings
# 2 s apart are separate candidates (a cane strikes the ground at every step, 1-2 s apart in
# older adults, and a fall may follow a strike), and peaks within 1 s are one candidate.
RECENTRE_BEFORE_S = 0.5
RECENTRE_AFTER_S = 2.0
REFRACTORY_S = 2.0
SAME_PEAK_S = 1.0
# Local spread below which the magnitude counts as at rest: well above the 0.01-0.02 g noise
# of a still MEMS part, well below the 0.1 g spread of slow walking.
REST_STD_G = 0.04
REST_WINDOW_S = 0.5
# Movement well above the wearer's baseline (jogging, stairs) around the candidate.
BUSY_G = 0.5

FEATURE_NAMES = (
    "peak_g",
    "peak_rel_g",
    "energy_g_s",
    "dip_g",
    "jerk_g_s",
    "pre_std_g",
    "post_early_std_g",
    "post_std_g",
    "post_rest_frac",
    "tilt_change_deg",
    "busy_frac",
)


def accel_array(accel_g: Sequence[Sequence[float]]) -> NDArray[np.float64]:
    """A window's `accel_g` ([x, y, z] samples, g) as an (n, 3) float64 array.

    Flattened through an iterator: half the time of `np.asarray` on nested tuples, which
    must discover the shape (a 100-sample window, 7 instead of 14 us).

    Raises:
        ValueError: when a sample does not have three components.
    """
    n = len(accel_g)
    flat = np.fromiter(chain.from_iterable(accel_g), dtype=np.float64)
    if flat.size != 3 * n:
        raise ValueError(f"accel_g holds {flat.size} values for {n} samples of [x, y, z]")
    return flat.reshape(n, 3)


def magnitude(samples: NDArray[np.float64]) -> NDArray[np.float64]:
    """Euclidean norm of each [x, y, z] sample, g."""
    out: NDArray[np.float64] = np.sqrt(np.einsum("ij,ij->i", samples, samples))
    return out


def _n(seconds: float, rate_hz: float) -> int:
    return max(1, round(seconds * rate_hz))


def std(x: NDArray[np.float64]) -> float:
    """Population standard deviation of a 1-D float64 array, g.

    numpy's own arithmetic (`x.std()`: the pairwise sum, the squared deviations, the same
    divisions), bit for bit, without its per-call Python: a fifth of the time on a window.
    """
    n = x.size
    d = x - x.sum() / n
    d *= d
    return math.sqrt(float(d.sum()) / n)


def mean_vector(samples: NDArray[np.float64]) -> NDArray[np.float64]:
    """The mean [x, y, z] of (n, 3) samples, g: `samples.mean(axis=0)` bit for bit."""
    out: NDArray[np.float64] = samples.sum(axis=0) / len(samples)
    return out


def angle_deg(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """Angle between two 3-vectors, degrees (0 when either is shorter than 1e-6).

    The arithmetic of `np.linalg.norm` and `np.clip` on these vectors, bit for bit.
    """
    na, nb = math.sqrt(float(a.dot(a))), math.sqrt(float(b.dot(b)))
    if na < 1e-6 or nb < 1e-6:
        return 0.0
    cos = float(a.dot(b)) / (na * nb)
    cos = 1.0 if cos > 1.0 else -1.0 if cos < -1.0 else cos
    return math.degrees(math.acos(cos))


@lru_cache(maxsize=512)
def _box(size: int, k: int) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
    """Bounds of each sample's centred box of `k` within `size` samples, and its width."""
    idx = np.arange(size)
    lo = np.clip(idx - k // 2, 0, size)
    hi = np.clip(idx - k // 2 + k, 0, size)
    width = hi - lo
    for a in (lo, hi, width):
        a.flags.writeable = False
    return lo, hi, width


def smooth(mag: NDArray[np.float64], rate_hz: float) -> NDArray[np.float64]:
    """Centred moving average of `mag` over `SMOOTH_S` (edges averaged over what exists), g."""
    k = _n(SMOOTH_S, rate_hz)
    if k == 1 or mag.size == 0:
        return mag.astype(np.float64, copy=True)
    csum = np.empty(mag.size + 1)
    csum[0] = 0.0
    np.cumsum(mag, out=csum[1:])
    lo, hi, width = _box(mag.size, k)
    out: NDArray[np.float64] = (csum[hi] - csum[lo]) / width
    return out


def impact_indices(mag: NDArray[np.float64], rate_hz: float) -> list[int]:
    """Candidate impacts: the largest sample of each run of samples >= IMPACT_G.

    A run starts at a crossing and lasts `REFRACTORY_S`; at most one candidate per run.
    """
    above = np.flatnonzero(mag >= IMPACT_G)
    out: list[int] = []
    gap = _n(REFRACTORY_S, rate_hz)
    i = 0
    while i < len(above):
        start = above[i]
        j = int(np.searchsorted(above, start + gap))
        cluster = above[i:j]
        out.append(int(cluster[np.argmax(mag[cluster])]))
        i = j
    return out


def recentre(sm: NDArray[np.float64], index: int, rate_hz: float) -> int:
    """The largest averaged sample near a candidate (see RECENTRE_BEFORE_S)."""
    lo = max(0, index - _n(RECENTRE_BEFORE_S, rate_hz))
    hi = min(sm.size, index + _n(RECENTRE_AFTER_S, rate_hz) + 1)
    if hi <= lo:
        return min(max(index, 0), sm.size - 1)
    return lo + int(np.argmax(sm[lo:hi]))


def _std(x: NDArray[np.float64]) -> float:
    return std(x) if x.size > 1 else 0.0


def _rest_frac(x: NDArray[np.float64], rate_hz: float) -> float:
    """Share of `x` whose local spread over REST_WINDOW_S is below REST_STD_G."""
    k = _n(REST_WINDOW_S, rate_hz)
    if x.size < k or k < 2:
        return 0.0
    c1 = np.concatenate(([0.0], np.cumsum(x)))
    c2 = np.concatenate(([0.0], np.cumsum(x * x)))
    mean = (c1[k:] - c1[:-k]) / k
    var = np.maximum((c2[k:] - c2[:-k]) / k - mean * mean, 0.0)
    return float(np.mean(np.sqrt(var) < REST_STD_G))


def features_at(
    samples: NDArray[np.float64], sm: NDArray[np.float64], peak: int, rate_hz: float
) -> NDArray[np.float64]:
    """Feature vector (FEATURE_NAMES order) of the averaged peak at index `peak`.

    Args:
        samples: (n, 3) accelerations in g at `rate_hz`.
        sm: `smooth(magnitude(samples), rate_hz)`.
        peak: index of the (re-centred) peak in `samples`.
        rate_hz: sampling rate, Hz.
    """
    r, n = rate_hz, sm.size

    def sl(a_s: float, b_s: float) -> slice:
        return slice(min(n, max(0, peak + round(a_s * r))), min(n, max(0, peak + round(b_s * r))))

    pre = sm[sl(-PRE_S, -1.0)]
    around = sm[: peak + 1]
    baseline = float(np.median(pre)) if pre.size else float(np.median(around))
    near = sm[sl(-0.5, 0.5)]
    lead = sm[sl(-1.0, 0.0)]
    lag = _n(SMOOTH_S, r)
    jz = sm[sl(-1.0, 0.5)]
    jerk = float(np.max(np.abs(jz[lag:] - jz[:-lag]))) * r / lag if jz.size > lag else 0.0
    post = sm[sl(1.0, POST_S)]
    pre_vec = samples[sl(-2.5, -0.5)]
    post_vec = samples[sl(1.0, POST_S)]
    tilt = (
        angle_deg(mean_vector(pre_vec), mean_vector(post_vec))
        if len(pre_vec) and len(post_vec)
        else 0.0
    )
    span = np.concatenate([sm[sl(-PRE_S, -0.5)], sm[sl(1.0, POST_S)]])
    return np.array(
        [
            float(sm[peak]),
            float(sm[peak]) - baseline,
            float(np.sum(np.abs(near - baseline))) / r,
            baseline - float(lead.min()) if lead.size else 0.0,
            jerk,
            _std(pre),
            _std(sm[sl(0.5, 2.0)]),
            _std(post),
            _rest_frac(post, r),
            tilt,
            float(np.mean(span > baseline + BUSY_G)) if span.size else 0.0,
        ],
        dtype=np.float64,
    )


def candidate_features(
    samples: NDArray[np.float64], rate_hz: float
) -> tuple[list[int], NDArray[np.float64]]:
    """Every candidate impact of a recording: re-centred peak indices and their features.

    Candidates whose averaged peak stays below IMPACT_G are left out: they are judged not a
    fall whatever the rate (a 200 Hz stream crosses on single samples a 20 Hz one never has).
    """
    mag = magnitude(samples)
    sm = smooth(mag, rate_hz)
    peaks: list[int] = []
    for idx in impact_indices(mag, rate_hz):
        p = recentre(sm, idx, rate_hz)
        if sm[p] >= IMPACT_G and all(abs(p - q) > SAME_PEAK_S * rate_hz for q in peaks):
            peaks.append(p)
    rows = [features_at(samples, sm, p, rate_hz) for p in peaks]
    feats = np.array(rows) if rows else np.empty((0, len(FEATURE_NAMES)))
    return peaks, feats
