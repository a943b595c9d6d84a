"""A 1,000-elder district for a minute, watched by an independent subscriber (slow)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from firmware_sim import Injection, Simulation, generate_fleet, read_ground_truth
from gateway import DeviceType, Status
from tests.firmware_sim.test_sim_mqtt import (
    Collector,
    clear_retained,
    decode_traffic,
    retained_status,
    suffixed,
)


@pytest.mark.slow
def test_district_minute_speaks_only_the_contract(
    mqtt_url: str, topic_prefix: str, device_suffix: str, tmp_path: Path
) -> None:
    fleet = suffixed(generate_fleet(1000, seed=11), device_suffix)
    killed = [d for d in fleet.devices if d.type is DeviceType.BAND][:3]
    canes = [d for d in fleet.devices if d.type is DeviceType.CANE][:2]
    injections = [Injection("offline", d.id, 20 + 10 * i) for i, d in enumerate(killed)]
    injections += [Injection("fall", d.elder_id, 15) for d in canes]
    truth = tmp_path / "truth.jsonl"
    collector = Collector(mqtt_url, f"{topic_prefix}eldercare/v1/#")
    try:
        sim = Simulation(
            fleet,
            mqtt_url=mqtt_url,
            prefix=topic_prefix,
            seed=5,
            speed=1.0,
            duration_s=60,
            injections=injections,
            ground_truth=truth,
            rate_scale=0.0,
        )
        stats = sim.run()
        got = collector.close()
        accepted, rejected = decode_traffic(got, fleet, topic_prefix)
        assert not rejected, Counter(reason for _, _, reason in rejected)
        kinds = {type(msg).__name__ for msg in accepted}
        wills = {m.device_id for m in accepted if isinstance(m, Status) and not m.online}
        assert stats.online == len(fleet.devices) - len(killed)
        assert {"Status", "SmokeTelemetry", "BandTelemetry", "CaneTelemetry"} <= kinds
        assert wills == {d.id for d in killed}
        retained = retained_status(mqtt_url, topic_prefix, len(fleet.devices))
        assert set(retained) == {d.id for d in fleet.devices}
        assert {d for d, p in retained.items() if not json.loads(p)["online"]} == wills
        incidents = read_ground_truth(truth)
        assert sorted((i.kind, i.device_id) for i in incidents) == sorted(
            [("device_offline", d.id) for d in killed] + [("fall", d.id) for d in canes]
        )
    finally:
        clear_retained(mqtt_url, collector.messages)
