"""Smart-cane accelerometer physics: gait, rest, falls and fall-like everyday movements (pure).

Samples are (n, 3) arrays in g in the cane's frame (z along the shaft, pointing up when
the cane stands). A still accelerometer reads the reaction to gravity, 1 g.

The fall signature follows published fall-detector studies (see shared data README):
free fall below 0.4–0.6 g for 150–1000 ms, an impact of 2–15 g, then at least 0.8–2 s of
stillness or an orientation change of 45° or more. Fall-like everyday movements are built
to miss at least one part of that signature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float64]

DEFAULT_RATE_HZ = 50
# ±16 g range (ADXL345-class parts); the data README asks for at least ±8 g and impacts
# reach 15 g, so a ±16 g range keeps the whole impact.
CLIP_G = 16.0
FREE_FALL_G = 0.5
CANE_KINDS = ("walk", "rest", "fall", "fall_recovery", "sit_hard", "drop_cane", "stumble")
FALL_KINDS = frozenset({"fall", "fall_recovery"})
_UPRIGHT = np.array([0.04, 0.02, 1.0])


@dataclass(frozen=True, slots=True)
class Episode:
    """A generated episode and where its notable moment (onset of the event) lies."""

    samples: Samples
    onset_index: int


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return out


def _lying(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Gravity direction of a cane lying on the floor: nearly horizontal shaft."""
    angle = rng.uniform(0, 2 * np.pi)
    return _unit(np.array([np.cos(angle), np.sin(angle), rng.uniform(-0.15, 0.15)]))


def _tilted(rng: np.random.Generator, max_deg: float) -> npt.NDArray[np.float64]:
    tilt, az = np.radians(rng.uniform(3, max_deg)), rng.uniform(0, 2 * np.pi)
    return np.array([np.sin(tilt) * np.cos(az), np.sin(tilt) * np.sin(az), np.cos(tilt)])


def _slerp(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], n: int) -> Samples:
    """n unit vectors turning smoothly from a to b (eased)."""
    w = (1 - np.cos(np.linspace(0, np.pi, n))) / 2
    return _unit(np.outer(1 - w, a) + np.outer(w, b) + 1e-9)


def walk_samples(
    n: int,
    rng: np.random.Generator,
    rate_hz: int = DEFAULT_RATE_HZ,
    phase: float = 0.0,
    intensity: float = 1.0,
) -> Samples:
    """Walking with a cane: one cane strike per gait cycle (0.8–1.0 Hz in older adults).

    Args:
        n: number of samples.
        rng: random source.
        rate_hz: sampling rate.
        phase: gait phase in cycles at the first sample (keeps consecutive windows continuous).
        intensity: scales the gait oscillation (below 1 for a slow, careful walk).
    """
    t = np.arange(n) / rate_hz
    freq_hz = rng.uniform(0.8, 1.0)
    cyc = 2 * np.pi * (freq_hz * t + phase)
    vertical = intensity * rng.uniform(0.15, 0.25) * np.sin(cyc)
    # Cane tip strike: a short positive pulse once per cycle (~40 ms wide).
    strike = (
        intensity * rng.uniform(0.3, 0.6) * np.exp(-(((np.mod(cyc, 2 * np.pi) - 1.6) / 0.25) ** 2))
    )
    out = np.empty((n, 3))
    out[:, 0] = _UPRIGHT[0] + intensity * rng.uniform(0.08, 0.15) * np.sin(cyc + 0.8)
    out[:, 1] = _UPRIGHT[1] + intensity * rng.uniform(0.03, 0.07) * np.sin(cyc / 2)
    out[:, 2] = 1.0 + vertical + strike
    return out + rng.normal(0, 0.02, (n, 3))


def rest_samples(
    n: int, rng: np.random.Generator, direction: npt.NDArray[np.float64] | None = None
) -> Samples:
    """A still cane: 1 g along `direction` (leaning upright when None) plus sensor noise."""
    g = _UPRIGHT / np.linalg.norm(_UPRIGHT) if direction is None else direction
    return np.tile(g, (n, 1)) + rng.normal(0, 0.008, (n, 3))


def _dip(
    rng: np.random.Generator, n: int, level: tuple[float, float], a: Samples, b: Samples
) -> Samples:
    """n samples of reduced magnitude while the orientation turns from a to b."""
    mags = rng.uniform(level[0], level[1], n)[:, None]
    out: Samples = _slerp(a[-1], b[-1], n) * mags
    return out


def _impact(rng: np.random.Generator, peak_g: float, direction: Samples, n: int) -> Samples:
    """A peak sample of `peak_g` then a damped rebound over n-1 samples."""
    mags = peak_g * 0.45 ** np.arange(n)
    mags = np.maximum(mags, 1.0) + rng.normal(0, 0.05, n)
    mags[0] = peak_g
    out: Samples = np.tile(direction, (n, 1)) * mags[:, None]
    return out


def _settle(
    rng: np.random.Generator, start: Samples, end: Samples, n: int, jitter_g: float
) -> Samples:
    return _slerp(start, end, n) + rng.normal(0, jitter_g, (n, 3))


def _fall(rng: np.random.Generator, rate_hz: int, recover: bool) -> tuple[list[Samples], int]:
    pre = walk_samples(int(rng.uniform(3, 6) * rate_hz), rng, rate_hz)
    upright, lying = pre[-1:] / np.linalg.norm(pre[-1]), _lying(rng)[None, :]
    lo, hi = int(np.ceil(0.15 * rate_hz)) + 1, int(np.floor(1.0 * rate_hz)) - 1
    n_ff = int(np.clip(round(rng.uniform(0.15, 1.0) * rate_hz), lo, hi))
    lead_in = np.array([[0.0, 0.0, 0.8], [0.0, 0.0, 0.62]])
    free_fall = _dip(rng, n_ff, (0.05, 0.42), upright, lying)
    peak_g = float(np.clip(rng.lognormal(np.log(5.0), 0.45), 2.2, 14.5))
    impact = _impact(rng, peak_g, lying[0], 4)
    parts = [pre, lead_in, free_fall, impact]
    onset = len(pre) + len(lead_in)
    if not recover:
        parts.append(rest_samples(int(rng.uniform(20, 40) * rate_hz), rng, lying[0]))
        return parts, onset
    still = rest_samples(int(rng.uniform(2, 6) * rate_hz), rng, lying[0])
    rising = _settle(rng, lying[0], upright[0], int(rng.uniform(4, 8) * rate_hz), 0.05)
    stand = rest_samples(2 * rate_hz, rng, upright[0])
    after = len(still) + len(rising) + len(stand)
    n_slow = max(2 * rate_hz, 24 * rate_hz - after)
    parts += [still, rising, stand, walk_samples(n_slow, rng, rate_hz, intensity=0.6)]
    return parts, onset


def _sit_hard(rng: np.random.Generator, rate_hz: int) -> tuple[list[Samples], int]:
    pre = walk_samples(int(rng.uniform(3, 6) * rate_hz), rng, rate_hz)
    upright, lean = pre[-1:] / np.linalg.norm(pre[-1]), _tilted(rng, 30)[None, :]
    # Lowering onto a chair unloads the cane only partly: no free fall below 0.5 g.
    dip = _dip(rng, int(rng.uniform(0.2, 0.5) * rate_hz), (0.6, 0.85), upright, lean)
    bump = _impact(rng, float(rng.uniform(1.3, 2.8)), lean[0], 3)
    rest = rest_samples(int(rng.uniform(20, 40) * rate_hz), rng, lean[0])
    fidget = rng.normal(0, 0.03, rest.shape) * (rng.random((len(rest), 1)) < 0.05)
    return [pre, dip, bump, rest + fidget], len(pre)


def _drop_cane(rng: np.random.Generator, rate_hz: int) -> tuple[list[Samples], int]:
    pre = walk_samples(int(rng.uniform(3, 6) * rate_hz), rng, rate_hz)
    upright, lying = pre[-1:] / np.linalg.norm(pre[-1]), _lying(rng)[None, :]
    # A dropped cane pivots on its tip: weightlessness lasts well under 150 ms.
    n_tip = int(rng.integers(2, max(3, int(0.14 * rate_hz)) + 1))
    lead_in = _dip(rng, 3, (0.65, 0.9), upright, upright)
    tip = _dip(rng, n_tip, (0.2, 0.45), upright, lying)
    clatter = _impact(rng, float(rng.uniform(2.0, 8.0)), lying[0], 4)
    lie = rest_samples(int(rng.uniform(2, 8) * rate_hz), rng, lying[0])
    pickup = _settle(rng, lying[0], upright[0], int(rng.uniform(1, 2) * rate_hz), 0.25)
    done = len(lie) + len(pickup)
    walk = walk_samples(max(2 * rate_hz, 22 * rate_hz - done), rng, rate_hz)
    return [pre, lead_in, tip, clatter, lie, pickup, walk], len(pre) + 3


def _stumble(rng: np.random.Generator, rate_hz: int) -> tuple[list[Samples], int]:
    pre = walk_samples(int(rng.uniform(3, 6) * rate_hz), rng, rate_hz)
    upright = pre[-1:] / np.linalg.norm(pre[-1])
    lurch = _dip(rng, int(0.3 * rate_hz), (0.6, 0.75), upright, upright)
    catch = _impact(rng, float(rng.uniform(1.6, 2.6)), upright[0], 3)
    pause = rest_samples(int(rng.uniform(1, 3) * rate_hz), rng)
    walk = walk_samples(20 * rate_hz, rng, rate_hz, phase=0.3)
    return [pre, lurch, catch, pause, walk], len(pre)


def episode(kind: str, rng: np.random.Generator, rate_hz: int = DEFAULT_RATE_HZ) -> Episode:
    """Like `cane_episode`, also telling where the event starts (free-fall onset for falls)."""
    window = 2 * rate_hz
    if kind == "walk":
        parts, onset = [walk_samples(int(rng.uniform(10, 30) * rate_hz), rng, rate_hz)], 0
    elif kind == "rest":
        parts, onset = [rest_samples(int(rng.uniform(10, 30) * rate_hz), rng)], 0
    elif kind in FALL_KINDS:
        parts, onset = _fall(rng, rate_hz, recover=kind == "fall_recovery")
    elif kind == "sit_hard":
        parts, onset = _sit_hard(rng, rate_hz)
    elif kind == "drop_cane":
        parts, onset = _drop_cane(rng, rate_hz)
    elif kind == "stumble":
        parts, onset = _stumble(rng, rate_hz)
    else:
        raise ValueError(f"unknown cane episode kind {kind!r}; one of {', '.join(CANE_KINDS)}")
    samples = np.concatenate(parts)
    # Pad with the final posture so the episode splits into whole device windows.
    short = (-len(samples)) % window
    if short:
        tail = rest_samples(short, rng, _unit(samples[-1]))
        samples = np.concatenate([samples, tail])
    return Episode(np.clip(samples, -CLIP_G, CLIP_G), onset)


def cane_episode(kind: str, rng: np.random.Generator, rate_hz: int = DEFAULT_RATE_HZ) -> Samples:
    """Generate one cane accelerometer episode.

    Args:
        kind: one of walk, rest, fall, fall_recovery (real falls), sit_hard, drop_cane,
            stumble (fall-like movements that are not falls).
        rng: seeded random source.
        rate_hz: sampling rate (50 Hz is enough for fall detection).

    Returns:
        An (n, 3) array in g, n a multiple of two seconds of samples. Fall-like episodes
        start with 3–6 s of walking and end with at least 20 s of after-event behaviour.

    Raises:
        ValueError: for an unknown kind.
    """
    return episode(kind, rng, rate_hz).samples


def cane_windows(samples: Samples, rate_hz: int, window_s: float = 2.0) -> list[Samples]:
    """Split an episode into the consecutive windows a cane sends (whole windows only).

    Args:
        samples: (n, 3) samples in g.
        rate_hz: their sampling rate.
        window_s: window length in seconds (the contract's typical 2 s).
    """
    size = max(1, round(window_s * rate_hz))
    return [samples[i : i + size] for i in range(0, len(samples) - size + 1, size)]
