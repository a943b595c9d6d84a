"""Fleet generation: valid contract §3 files, coverage of every home, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eldercare.cli import main
from firmware_sim import generate_fleet, load_subdistricts
from firmware_sim.district import XICHENG_BBOX, population_shares
from gateway import DeviceType, fleet_to_dict, parse_fleet
from gateway.geo import distance_m as haversine_m


@pytest.mark.parametrize("n", [10, 500])
def test_fleet_is_valid_and_covers_every_home(n: int) -> None:
    fleet = generate_fleet(n, seed=4)
    again = parse_fleet(json.dumps(fleet_to_dict(fleet)))
    assert again == fleet
    assert len(fleet.elders) == n
    lat0, lon0, lat1, lon1 = XICHENG_BBOX
    centres = np.array([(c.lat, c.lon) for c in fleet.care_centers])
    for elder in fleet.elders:
        assert lat0 <= elder.home_lat <= lat1 and lon0 <= elder.home_lon <= lon1
        nearest = min(haversine_m(elder.home_lat, elder.home_lon, a, b) for a, b in centres)
        assert nearest <= fleet.care_centers[0].coverage_radius_m
        assert elder.families
    buttons = {d.elder_id for d in fleet.devices if d.type is DeviceType.BUTTON}
    assert buttons == {e.id for e in fleet.elders}
    assert all(c.capacity == 3 and c.coverage_km2 == 1.0 for c in fleet.care_centers)


def test_ids_and_device_mix() -> None:
    fleet = generate_fleet(2000, seed=1)
    assert fleet.elders[0].id == "el-000001" and fleet.care_centers[0].id == "cc-001"
    counts = {t: sum(d.type is t for d in fleet.devices) for t in DeviceType}
    assert counts[DeviceType.BUTTON] == 2000
    assert 0.7 < counts[DeviceType.SMOKE] / 2000 < 0.9
    assert 0.3 < counts[DeviceType.BAND] / 2000 < 0.5
    assert 0.15 < counts[DeviceType.CANE] / 2000 < 0.35
    assert {d.id.split("-")[0] for d in fleet.devices} == {"btn", "smk", "band", "cane"}


def test_same_seed_same_fleet_other_seed_other_fleet() -> None:
    assert generate_fleet(200, seed=9) == generate_fleet(200, seed=9)
    assert generate_fleet(200, seed=9) != generate_fleet(200, seed=10)


def test_homes_follow_subdistrict_population() -> None:
    subs = load_subdistricts()
    shares = population_shares(subs)
    assert len(subs) == 15 and shares.sum() == pytest.approx(1.0)
    blank = [s for s, sub in zip(shares, subs, strict=True) if sub.population is None]
    assert len(set(np.round(blank, 9))) == 1  # blanks share the rest equally
    fleet = generate_fleet(20_000, seed=2)
    homes = np.array([(e.home_lat, e.home_lon) for e in fleet.elders])
    centroids = np.array([(s.lat, s.lon) for s in subs])
    nearest = np.argmin(((homes[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    observed = np.bincount(nearest, minlength=len(subs)) / len(homes)
    # Discs overlap, so compare loosely: the most populous subdistrict gets the most homes.
    assert np.argmax(observed) in np.argsort(shares)[-3:]


def test_unknown_district_refused() -> None:
    with pytest.raises(ValueError, match="no data"):
        generate_fleet(10, seed=0, district="atlantis")


def test_cli_writes_a_fleet_file(tmp_path: Path) -> None:
    out = tmp_path / "fleet.json"
    assert main(["sim", "fleet", "--elders", "25", "--seed", "3", "--out", str(out)]) == 0
    fleet = parse_fleet(out.read_bytes())
    assert fleet == generate_fleet(25, seed=3)
