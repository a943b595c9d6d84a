"""The shipped fall model in the detector, on real recordings streamed as cane windows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from alerting.detectors import FallDetector
from alerting.fall_model import load_fall_model
from evaluation.fall_replay import replay
from evaluation.sisfall import SisFall, resample
from gateway import Severity

# Falls of every type and the everyday activities that look most like them: jogging
# (D03/D04), fast sitting (D08/D10), collapsing into a chair (D11), stumbling (D18), jumping
# (D19), for three subjects; the two older subjects add their own everyday activities.
SUBJECTS = ("SA05", "SA13", "SA21")
OLDER = ("SE09", "SE13")
HARD_ADL = {"D03", "D04", "D08", "D10", "D11", "D18", "D19"}


def _chosen(data: SisFall) -> list[int]:
    young = [
        r.number
        for r in data.recordings
        if r.subject in SUBJECTS and (r.is_fall or r.code in HARD_ADL) and r.id.endswith("R01")
    ]
    older = [r.number for r in data.recordings if r.subject in OLDER and r.code in HARD_ADL]
    return young + older


@pytest.fixture(scope="module")
def new_detector() -> Callable[[], FallDetector]:
    model = load_fall_model()
    return lambda: FallDetector(model.classifier, threshold=model.threshold)


def _decide(make: Callable[[], FallDetector], samples: NDArray[np.float64], rate_hz: int) -> bool:
    found = replay(make(), samples, rate_hz)
    return any(t.severity is Severity.CRITICAL for t in found)


@pytest.mark.slow
def test_shipped_model_raises_real_falls_and_not_everyday_movements(
    sisfall: SisFall, new_detector: Callable[[], FallDetector]
) -> None:
    numbers = _chosen(sisfall)
    falls = [n for n in numbers if sisfall.recordings[n].is_fall]
    adls = [n for n in numbers if not sisfall.recordings[n].is_fall]
    assert len(falls) == 45 and len(adls) > 40
    hits = [_decide(new_detector, resample(sisfall.samples_g(n), 50), 50) for n in falls]
    false = [n for n in adls if _decide(new_detector, resample(sisfall.samples_g(n), 50), 50)]
    # These subjects were in the model's training data: this checks the shipped artefact in
    # the streaming detector, not generalisation (the cross-validation does that).
    assert sum(hits) >= 0.93 * len(falls), f"{sum(hits)}/{len(falls)}"
    assert [sisfall.recordings[n].id for n in false] == []


# Decisions must not depend on the cane's rate or a constant sensor offset. Tolerance: at
# most 1 in 20 recordings may flip between any variant and 50 Hz without offset (a bar this
# high has recordings whose probability sits at it; the cross-validated figures are the same
# at every rate to within their intervals).
VARIANTS = [(20, 0.0), (25, 0.0), (100, 0.0), (200, 0.0), (50, 0.15), (50, -0.15), (20, 0.15)]


@pytest.mark.slow
@pytest.mark.parametrize(("rate_hz", "offset_g"), VARIANTS, ids=lambda v: str(v))
def test_same_decisions_at_any_rate_and_offset(
    sisfall: SisFall, new_detector: Callable[[], FallDetector], rate_hz: int, offset_g: float
) -> None:
    numbers = _chosen(sisfall)
    signs = np.array([1.0, -1.0, 1.0])  # every axis off, not only the vertical one
    flips = []
    for n in numbers:
        raw = sisfall.samples_g(n)
        ref = _decide(new_detector, resample(raw, 50), 50)
        got = _decide(new_detector, resample(raw + offset_g * signs, rate_hz), rate_hz)
        if got != ref:
            flips.append(sisfall.recordings[n].id)
    assert len(flips) <= len(numbers) / 20, flips
