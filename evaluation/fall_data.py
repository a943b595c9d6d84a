"""Candidate impacts of every SisFall recording at cane rates, with their features and labels.

Each recording is resampled to each rate as a cane's sensor would sample it, and cut into
candidates exactly as the detector does (`alerting.fall_features.candidate_features`). In a
fall recording the candidate at the recording's largest averaged peak is the fall (label 1);
its other candidates (walking before, getting up after) are neither falls nor everyday
activity and are left out (label -1). Every candidate of an everyday recording is a
non-fall (label 0), so false alarms are counted over whole recordings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from alerting.fall_features import FEATURE_NAMES, candidate_features, magnitude, smooth
from evaluation.sisfall import SisFall, resample

RATES_HZ = (20, 25, 50, 100)
# A fall candidate lies within this of the recording's largest averaged peak.
FALL_MATCH_S = 1.0
# Sensor offsets drawn for the augmented copies: the ±0.15 g a cheap MEMS part may sit off.
OFFSET_G = 0.15
AUGMENT_SEED = 20_170_198


@dataclass(frozen=True, slots=True)
class Candidates:
    """Rows of candidate impacts (all arrays share their first axis)."""

    x: NDArray[np.float64]
    label: NDArray[np.int64]  # 1 fall, 0 everyday activity, -1 other part of a fall recording
    recording: NDArray[np.int64]
    rate_hz: NDArray[np.int64]
    augmented: NDArray[np.bool_]

    def select(self, mask: NDArray[np.bool_]) -> Candidates:
        """The rows where `mask` holds."""
        return Candidates(
            self.x[mask],
            self.label[mask],
            self.recording[mask],
            self.rate_hz[mask],
            self.augmented[mask],
        )


def label_candidates(
    samples: NDArray[np.float64], peaks: Sequence[int], rate_hz: int, is_fall: bool
) -> list[int]:
    """Labels of a recording's candidates (see the module docstring)."""
    if not is_fall:
        return [0] * len(peaks)
    top = int(np.argmax(smooth(magnitude(samples), rate_hz)))
    reach = FALL_MATCH_S * rate_hz
    return [1 if abs(p - top) <= reach else -1 for p in peaks]


def extract(
    data: SisFall,
    numbers: Sequence[int] | None = None,
    rates_hz: Sequence[int] = RATES_HZ,
    *,
    augment: bool = False,
) -> Candidates:
    """Candidates of recordings `numbers` (default all) at every rate.

    Args:
        data: the recordings.
        numbers: which recordings.
        rates_hz: the rates to resample to.
        augment: also add a copy of each recording with a random constant offset of up to
            OFFSET_G per axis (seeded per recording, so reruns give the same rows).
    """
    chosen = range(len(data.recordings)) if numbers is None else numbers
    xs: list[NDArray[np.float64]] = []
    meta: list[tuple[int, int, int, bool]] = []
    for number in chosen:
        raw = data.samples_g(number)
        is_fall = data.recordings[number].is_fall
        versions = [(raw, False)]
        if augment:
            rng = np.random.default_rng([AUGMENT_SEED, number])
            versions.append((raw + rng.uniform(-OFFSET_G, OFFSET_G, 3), True))
        for rate_hz in rates_hz:
            for base, aug in versions:
                samples = resample(base, rate_hz)
                peaks, feats = candidate_features(samples, rate_hz)
                labels = label_candidates(samples, peaks, rate_hz, is_fall)
                xs.append(feats)
                meta.extend((lab, number, rate_hz, aug) for lab in labels)
    m = np.array(meta, dtype=np.int64).reshape(-1, 4)
    return Candidates(
        np.concatenate(xs) if xs else np.empty((0, len(FEATURE_NAMES))),
        m[:, 0],
        m[:, 1],
        m[:, 2],
        m[:, 3].astype(bool),
    )
