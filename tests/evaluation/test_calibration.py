"""The simulator's cane physics against the real recordings it was fitted on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import ks_2samp

from evaluation.calibration import (
    CALIBRATION_PATH,
    GROUPS,
    PARAMS,
    RATE_HZ,
    REPORT_PATH,
    fit,
    physical,
    report,
    sim_episodes,
)
from evaluation.sisfall import SisFall, resample


@pytest.mark.parametrize("name", ["free_fall_s", "dip_g", "rest_level_g", "rest_std_g"])
def test_simulated_falls_match_real_falls(sisfall: SisFall, name: str) -> None:
    """Two-sample KS distance under 0.2 on the fitted parameters. Measured on these subjects:
    0.09 / 0.14 / 0.14 / 0.09; the signature-built falls (free fall 0.15-1 s below 0.42 g,
    rest at exactly 1 g) scored 0.68 / 0.80 / 0.57 / 0.78."""
    subjects = sisfall.subjects()[:6]  # a few subjects keep it fast
    real = [
        physical(resample(sisfall.samples_g(r.number), RATE_HZ), RATE_HZ)
        for r in sisfall.recordings
        if r.is_fall and r.subject in subjects
    ]
    sim = [physical(s, RATE_HZ) for s in sim_episodes(("fall",), 150)]
    k = PARAMS.index(name)
    assert len(real) >= 100
    assert ks_2samp([p[k] for p in real], [p[k] for p in sim]).statistic < 0.2


@pytest.mark.slow
def test_committed_calibration_and_report_are_what_the_commands_build(sisfall: SisFall) -> None:
    assert json.loads(CALIBRATION_PATH.read_text(encoding="utf-8")) == json.loads(
        json.dumps(fit(sisfall))
    )
    assert REPORT_PATH.read_text(encoding="utf-8") == report(sisfall) + "\n"
    assert set(GROUPS) == {"fall", "sit_hard", "stumble"}
    assert np.isfinite(json.loads(CALIBRATION_PATH.read_text())["groups"]["fall"]["peak_g"]).all()
