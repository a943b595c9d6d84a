"""The anomaly replay's scoring: detectable episodes, found ones, false alarms."""

from __future__ import annotations

from evaluation.anomaly_replay import Episode, Reading, score, simulate

T0 = 1_796_000_000_000
MIN = 60_000


def _resting(elder: str, start: int, count: int, hr: int) -> list[Reading]:
    band = f"band-{elder}"
    return [(elder, band, start + k * 5 * MIN, hr + k % 2, 15, True) for k in range(count)]


def test_episodes_are_found_false_alarms_counted_and_unseen_episodes_left_out() -> None:
    readings = _resting("el-1", T0, 60, 68)  # a baseline at rest
    onset = T0 + 60 * 5 * MIN
    readings += _resting("el-1", onset, 6, 120)  # a racing heart for half an hour
    readings += _resting("el-1", onset + 6 * 5 * MIN, 20, 68)
    # Another elder: racing heart at rest with no episode in the ground truth.
    readings += _resting("el-2", T0, 60, 70) + _resting("el-2", T0 + 60 * 5 * MIN, 3, 125)
    # A third elder's episode while the band was off: no heart rate, not detectable.
    readings += [("el-3", "band-el-3", T0 + k * 5 * MIN, None, 0, False) for k in range(40)]
    episodes = [
        Episode("el-1", onset, onset + 30 * MIN, "rhythm=af_rvr rate_bpm=120 hours=0.50"),
        Episode("el-3", T0 + 10 * MIN, T0 + 70 * MIN, "rhythm=heart_block rate_bpm=50 hours=1.00"),
    ]
    result = score(readings, episodes, bands=3, days=0.5)
    assert (result.detectable, result.found, result.false_alarms) == (1, 1, 1)
    assert result.latency_min == [5.0]  # the second unusual reading raises
    assert result.false_per_band_day == 1 / 1.5
    assert result.missed == []


def test_a_short_simulation_yields_readings_and_episodes() -> None:
    readings, episodes, bands = simulate(60, 0.5, seed=3, per_day=2.0)
    assert bands > 0 and len(readings) > 100 * bands
    assert episodes and all(e.end_ms > e.start_ms for e in episodes)
    assert {e.elder_id for e in episodes} <= {r[0] for r in readings}
