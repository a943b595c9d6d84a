"""The cane's own `fall_detected` hint must not turn real everyday movements into fall alerts."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from alerting.detectors import FallDetector
from alerting.detectors.fall import HINT_THRESHOLD
from alerting.fall_model import load_fall_model
from evaluation.fall_data import extract
from evaluation.fall_replay import replay
from evaluation.fall_training import make_model
from evaluation.sisfall import SisFall, resample
from gateway import Severity

RATE_HZ = 50
# Trained on every subject but three, as one fold of the cross-validation would be, ...
# ... and judged on subjects it never saw, young and older, on the everyday movements most
# like a fall: jogging (D03/D04), fast sitting and collapsing into a chair (D08/D10/D11),
# stumbling (D18), jumping (D19), and the lying-down transitions (D13/D14) that drew most of
# the hinted false alarms in `python -m evaluation.hint_bar`'s out-of-fold figures.
HELD_OUT = ("SA08", "SA11", "SE07")
HARD_ADL = {"D03", "D04", "D08", "D10", "D11", "D13", "D14", "D18", "D19"}


def _alerts(
    model: object, threshold: float, hint_bar: float, samples: NDArray[np.float64], hint: bool
) -> bool:
    detector = FallDetector(model, threshold=threshold, hint_threshold=hint_bar)  # type: ignore[arg-type]
    found = replay(detector, samples, RATE_HZ, hint_every_window=hint)
    return any(t.severity is Severity.CRITICAL for t in found)


@pytest.mark.slow
def test_hinted_everyday_movements_of_unseen_subjects_raise_no_fall(
    sisfall: SisFall, hint_bar: float = HINT_THRESHOLD
) -> None:
    """Worst case: the cane flags every impact. No everyday recording may alert because of
    the hint (the old bar of 0.3 fails this: 2 of these recordings alert only when hinted)."""
    train = [r.number for r in sisfall.recordings if r.subject not in HELD_OUT]
    with threadpool_limits(1):
        cands = extract(sisfall, train, (RATE_HZ,), augment=True)
        keep = cands.label >= 0
        model = make_model().fit(cands.x[keep], cands.label[keep])
    threshold = load_fall_model().threshold  # the shipped operating point
    adls = [r for r in sisfall.recordings if r.subject in HELD_OUT and r.code in HARD_ADL]
    assert len(adls) >= 90
    by_hint = []
    for rec in adls:
        samples = resample(sisfall.samples_g(rec.number), RATE_HZ)
        if _alerts(model, threshold, hint_bar, samples, hint=True) and not _alerts(
            model, threshold, hint_bar, samples, hint=False
        ):
            by_hint.append(rec.id)
    assert by_hint == [], f"{len(by_hint)}/{len(adls)} everyday recordings alerted by the hint"
