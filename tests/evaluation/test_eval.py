"""`eldercare eval` end to end on a tiny district (simulator, broker, service, database)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from alerting.settings import AlertingSettings
from evaluation.evaluate import TUNING_SEEDS, plan_injections, run_eval
from firmware_sim.district import generate_fleet


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
