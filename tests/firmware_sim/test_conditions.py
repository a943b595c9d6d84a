"""Immobility and arrhythmia conditions: what the devices show and the ground truth they write."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from firmware_sim import Engine, Injection, Simulation, generate_fleet, read_ground_truth
from firmware_sim.conditions import draw_arrhythmia, draw_immobility_ms
from gateway import DeviceType, Fleet

START_MS = 1_764_288_000_000  # 2025-11-28 08:00 Beijing
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return generate_fleet(12, seed=5)


def _band(fleet: Fleet) -> tuple[str, str]:
    band = next(d for d in fleet.devices if d.type is DeviceType.BAND)
    return band.elder_id, band.id


def _band_readings(engine: Engine, band_id: str, until_ms: int) -> list[dict[str, object]]:
    i = engine.index[band_id]
    return [
        json.loads(out.wire.payload)
        for out in engine.advance(until_ms)
        if out.device == i and out.wire is not None and "/telemetry" in out.wire.topic
    ]


def test_immobility_shows_no_steps_while_worn_and_is_recorded(fleet: Fleet) -> None:
    elder_id, band_id = _band(fleet)
    at_s = 1800.0
    inj = Injection("inactivity", elder_id, at_s, {"hours": 3})
    engine = Engine(fleet, seed=2, start_ms=START_MS, rate_scale=0.0, injections=[inj])
    readings = _band_readings(engine, band_id, START_MS + 4 * HOUR_MS)
    onset = START_MS + int(at_s * 1000)
    # The fix at the onset reports the steps taken before it (since the previous fix).
    during = [r for r in readings if onset < int(str(r["ts"])) <= onset + 3 * HOUR_MS]
    assert len(during) >= 30
    assert all(r["steps"] == 0 and r["worn"] is True and r["hr_bpm"] for r in during)
    truth = [i for i in engine.take_incidents() if i.kind == "inactivity"]
    assert [(i.real, i.elder_id, i.device_id, i.start_ts) for i in truth] == [
        (True, elder_id, band_id, onset)
    ]
    assert truth[0].detail == "hours=3.00"


@pytest.mark.parametrize("rhythm", ["af_rvr", "heart_block"])
def test_arrhythmia_changes_the_heart_rate_and_is_recorded(fleet: Fleet, rhythm: str) -> None:
    elder_id, band_id = _band(fleet)
    inj = Injection("anomaly", band_id, 600.0, {"rhythm": rhythm})
    engine = Engine(fleet, seed=2, start_ms=START_MS, rate_scale=0.0, injections=[inj])
    readings = _band_readings(engine, band_id, START_MS + 2 * HOUR_MS)
    (truth,) = [i for i in engine.take_incidents() if i.kind == "anomaly"]
    assert (truth.real, truth.elder_id, truth.device_id) == (True, elder_id, band_id)
    fields = dict(part.split("=") for part in truth.detail.split())
    assert fields["rhythm"] == rhythm
    end_ms = truth.start_ts + int(float(fields["hours"]) * HOUR_MS)
    hrs = [
        int(str(r["hr_bpm"]))
        for r in readings
        if truth.start_ts <= int(str(r["ts"])) < end_ms and r["hr_bpm"] is not None
    ]
    before = [int(str(r["hr_bpm"])) for r in readings if int(str(r["ts"])) < truth.start_ts]
    assert hrs and before
    rate = float(fields["rate_bpm"])
    assert abs(float(np.median(hrs)) - rate) < 10
    assert (min(hrs) > max(before)) if rhythm == "af_rvr" else (max(hrs) < min(before))


def test_condition_draws_follow_their_descriptions() -> None:
    rng = np.random.default_rng(1)
    hours = [draw_immobility_ms(rng) / HOUR_MS for _ in range(500)]
    assert min(hours) >= 2.0 and max(hours) <= 12.0
    af = [draw_arrhythmia(rng, 0, "af_rvr") for _ in range(200)]
    block = [draw_arrhythmia(rng, 0, "heart_block") for _ in range(200)]
    assert all(110 <= a.rate_bpm <= 160 for a in af)
    assert all(25 <= b.rate_bpm <= 60 for b in block)
    mixed = [draw_arrhythmia(rng, 0).kind for _ in range(1000)]
    assert 0.6 < mixed.count("af_rvr") / 1000 < 0.8
    with pytest.raises(ValueError, match="unknown rhythm"):
        draw_arrhythmia(rng, 0, "flutter")


def test_spontaneous_rates_are_set_by_the_options(fleet: Fleet) -> None:
    day_ms = 24 * HOUR_MS

    def incidents(inactivity: float, anomaly: float) -> list[tuple[str, str]]:
        engine = Engine(
            fleet,
            seed=4,
            start_ms=START_MS,
            inactivity_per_day=inactivity,
            anomaly_per_day=anomaly,
        )
        engine.advance(START_MS + day_ms)
        return [(i.kind, i.elder_id) for i in engine.take_incidents()]

    none = incidents(0.0, 0.0)
    assert not {k for k, _ in none} & {"inactivity", "anomaly"}
    every = incidents(1.0, 6.0)
    movers = {d.elder_id for d in fleet.devices if d.type in (DeviceType.BAND, DeviceType.CANE)}
    banded = {d.elder_id for d in fleet.devices if d.type is DeviceType.BAND}
    still = [e for k, e in every if k == "inactivity"]
    # One immobility episode per elder on each local day: the run spans two (08:00 to 08:00).
    assert set(still) == movers and len(still) <= 2 * len(movers)
    assert {e for k, e in every if k == "anomaly"} <= banded
    assert sum(k == "anomaly" for k, _ in every) >= 3 * len(banded)


def test_simulation_writes_the_ground_truth(
    mqtt_url: str, topic_prefix: str, device_suffix: str, fleet: Fleet, tmp_path: Path
) -> None:
    mine = replace(
        fleet, devices=tuple(replace(d, id=f"{d.id}-{device_suffix}") for d in fleet.devices)
    )
    elder_id, band_id = _band(mine)
    truth = tmp_path / "truth.jsonl"
    sim = Simulation(
        mine,
        mqtt_url=mqtt_url,
        prefix=topic_prefix,
        seed=3,
        speed=20,
        duration_s=3,
        rate_scale=0.0,
        injections=[Injection("inactivity", elder_id, 5), Injection("anomaly", band_id, 10)],
        ground_truth=truth,
    )
    sim.run()
    written = read_ground_truth(truth)
    assert {(i.kind, i.real, i.elder_id, i.device_id) for i in written} == {
        ("inactivity", True, elder_id, band_id),
        ("anomaly", True, elder_id, band_id),
    }
