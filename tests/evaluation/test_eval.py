"""`eldercare eval` end to end on a tiny district (simulator, broker, service, database)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from alerting.settings import AlertingSettings
from evaluation.evaluate import TUNING_SEEDS, eval_start_ms, plan_injections, run_eval
from firmware_sim.district import generate_fleet
from gateway.contract import DeviceType


def test_injection_plan_is_seeded_and_covers_every_elder() -> None:
    fleet = generate_fleet(10, 5001)
    plan = plan_injections(fleet, 5001, 3600.0)
    assert plan == plan_injections(fleet, 5001, 3600.0)
    assert plan != plan_injections(fleet, 5002, 3600.0)
    assert {i.target for i in plan if i.kind == "sos"} == {e.id for e in fleet.elders}
    assert all(0 < i.at_s < 3600 for i in plan)


@pytest.mark.slow
def test_eval_scores_a_short_run(mqtt_url: str, database_url: str, tmp_path: Path) -> None:
    args = argparse.Namespace(
        elders=8,
        seeds=[TUNING_SEEDS[0]],
        speed=20.0,
        duration=40.0,
        pooled=0,
        dump=tmp_path,
        keep_schema=False,
        start_hour=9.0,
    )
    base = AlertingSettings(database_url=database_url, mqtt_url=mqtt_url)
    report = run_eval(args, base)
    print(report)
    sos_line = next(line for line in report.splitlines() if line.startswith("sos "))
    incidents, sensitivity = sos_line.split()[1:3]
    assert int(incidents) >= 1 and float(sensitivity) == 1.0
    assert (tmp_path / str(TUNING_SEEDS[0]) / "ground_truth.jsonl").read_text().strip()
    # A simulated staff took alerts: answer times are over answered alerts only.
    staff = next(line for line in report.splitlines() if line.startswith("staff: "))
    answered = int(staff.split(", ")[1].split()[0])
    assert answered >= 1
    assert "answered within 60 s" in report and "fires paged within 1 s" in report
    for kind in ("inactivity", "anomaly"):
        assert any(line.startswith(f"{kind} ") for line in report.splitlines())


def test_injection_plan_gives_conditions_their_devices() -> None:
    fleet = generate_fleet(30, 5001)
    plan = plan_injections(fleet, 5001, 5 * 3600.0)
    types = {d.id: d.type for d in fleet.devices}
    movers = {d.elder_id for d in fleet.devices if d.type in (DeviceType.BAND, DeviceType.CANE)}
    still = [i for i in plan if i.kind == "inactivity"]
    arrhythmia = [i for i in plan if i.kind == "anomaly"]
    assert still and arrhythmia
    assert {i.target for i in still} <= movers
    assert all(types[i.target] is DeviceType.BAND for i in arrhythmia)
    # Their draws come from their own stream: the other incidents are planned as before.
    others = [i for i in plan if i.kind not in ("inactivity", "anomaly")]
    assert len(others) == len(plan) - len(still) - len(arrhythmia)


def test_eval_start_is_at_the_local_hour_and_ends_before_now() -> None:
    now_ms = 1_764_300_000_000  # 2025-11-28 11:20 Beijing
    for sim_s in (600.0, 3 * 3600.0, 20 * 3600.0):
        start = eval_start_ms(now_ms, sim_s, 9.0)
        assert start + sim_s * 1000 <= now_ms < start + sim_s * 1000 + 86_400_000
        assert (start + 8 * 3_600_000) % 86_400_000 == 9 * 3_600_000


@pytest.mark.slow
def test_eval_scores_inactivity_and_anomaly(
    mqtt_url: str, database_url: str, tmp_path: Path
) -> None:
    """A run of 5 simulated hours (fast: 300x for 60 s) scores both conditions one to one."""
    args = argparse.Namespace(
        elders=6,
        seeds=[TUNING_SEEDS[0]],
        speed=300.0,
        duration=60.0,
        pooled=0,
        dump=tmp_path,
        keep_schema=False,
        start_hour=9.0,
    )
    base = AlertingSettings(database_url=database_url, mqtt_url=mqtt_url)
    report = run_eval(args, base)
    print(report)
    truth = (tmp_path / str(TUNING_SEEDS[0]) / "ground_truth.jsonl").read_text()
    for kind in ("inactivity", "anomaly"):
        assert f'"kind":"{kind}","real":true' in truth
        line = next(line for line in report.splitlines() if line.startswith(f"{kind} "))
        assert int(line.split()[1]) >= 1, line
