"""A 1,000-elder district for a minute, watched by an independent subscriber (slow)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware_sim import Injection, Simulation, generate_fleet, read_ground_truth
from gateway import DeviceType, PayloadError, Status, decode
from gateway.mqtt import parse_mqtt_url
from tests.firmware_sim.test_sim_mqtt import Collector, clear_retained, suffixed


def retained_status(mqtt_url: str, prefix: str, expected: int) -> dict[str, bytes]:
    """Every retained status, read at QoS 0 (a QoS 1 burst of thousands of retained messages
    would overflow Mosquitto's default 1,000-message queue for one subscriber)."""
    addr = parse_mqtt_url(mqtt_url)
    got: dict[str, bytes] = {}
    client = paho.Client(CallbackAPIVersion.VERSION2)

    def on_message(c: paho.Client, u: object, msg: paho.MQTTMessage) -> None:
        if msg.retain:
            got[msg.topic.split("/")[-2]] = msg.payload

    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe(f"{prefix}eldercare/v1/devices/+/status", 0)
    client.connect(addr.host, addr.port)
    client.loop_start()
    deadline = time.monotonic() + 20
    while len(got) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    client.disconnect()
    client.loop_stop()
    return got


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
        registry = {d.id: d.type for d in fleet.devices}
        rejected: Counter[str] = Counter()
        wills: set[str] = set()
        kinds: Counter[str] = Counter()
        for topic, payload, _ in got:
            try:
                msg = decode(
                    topic,
                    payload,
                    now_ms=int(time.time() * 1000),
                    registry=registry,
                    prefix=topic_prefix,
                )
            except PayloadError as exc:
                rejected[exc.reason.value] += 1
                continue
            kinds[type(msg).__name__] += 1
            if isinstance(msg, Status) and not msg.online:
                wills.add(msg.device_id)
        assert not rejected, rejected
        assert stats.online == len(fleet.devices) - len(killed)
        assert {"Status", "SmokeTelemetry", "BandTelemetry", "CaneTelemetry"} <= set(kinds)
        assert wills == {d.id for d in killed}
        retained = retained_status(mqtt_url, topic_prefix, len(registry))
        assert set(retained) == set(registry)
        assert {d for d, p in retained.items() if not json.loads(p)["online"]} == wills
        incidents = read_ground_truth(truth)
        assert sorted((i.kind, i.device_id) for i in incidents) == sorted(
            [("device_offline", d.id) for d in killed] + [("fall", d.id) for d in canes]
        )
    finally:
        clear_retained(mqtt_url, collector.messages)
