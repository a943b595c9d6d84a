"""The simulator against the real Mosquitto: decoding, retained status, Wills, ground truth."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from eldercare.cli import main
from firmware_sim import FaultRates, Injection, Simulation, generate_fleet, read_ground_truth
from firmware_sim.routine import DAY_MS, HOUR_MS, LOCAL_OFFSET_MS
from gateway import DeviceType, Fleet, Message, PayloadError, Status, decode, fleet_to_dict
from gateway.mqtt import parse_mqtt_url

START_MS = 1_764_300_000_000


def recent_local_morning_ms(now_ms: int) -> int:
    """The latest 10:00 Beijing time at least an hour before `now_ms` (epoch ms).

    A run started there is the same run whatever the wall clock says (the routines
    depend on the time of day), and its device timestamps stay in the past.
    """
    day = (now_ms - HOUR_MS + LOCAL_OFFSET_MS) // DAY_MS
    start = day * DAY_MS - LOCAL_OFFSET_MS + 10 * HOUR_MS
    return start if start <= now_ms - HOUR_MS else start - DAY_MS


class Collector:
    """A subscriber on `{prefix}eldercare/v1/#` keeping (topic, payload, retain)."""

    def __init__(self, mqtt_url: str, topic_filter: str) -> None:
        addr = parse_mqtt_url(mqtt_url)
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic_filter, qos=1)
        self.client.connect(addr.host, addr.port)
        self.client.loop_start()
        assert self._subscribed.wait(5), "no SUBACK"

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def close(self) -> list[tuple[str, bytes, bool]]:
        time.sleep(0.5)
        self.client.disconnect()
        self.client.loop_stop()
        with self._lock:
            return list(self.messages)


def suffixed(fleet: Fleet, suffix: str) -> Fleet:
    """The fleet with this test's own device ids (unique MQTT client ids on the shared broker)."""
    return replace(fleet, devices=tuple(replace(d, id=f"{d.id}-{suffix}") for d in fleet.devices))


def clear_retained(mqtt_url: str, messages: list[tuple[str, bytes, bool]]) -> None:
    addr = parse_mqtt_url(mqtt_url)
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect(addr.host, addr.port)
    client.loop_start()
    for topic in {t for t, _, _ in messages if t.endswith("/status")}:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def fleet(device_suffix: str) -> Fleet:
    return suffixed(generate_fleet(12, seed=21), device_suffix)


@pytest.fixture
def collector(mqtt_url: str, topic_prefix: str) -> Iterator[Collector]:
    c = Collector(mqtt_url, f"{topic_prefix}eldercare/v1/#")
    yield c
    clear_retained(mqtt_url, c.messages)


def retained_status(mqtt_url: str, prefix: str, expected: int) -> dict[str, bytes]:
    """Device id -> retained status payload, read at QoS 0 (a QoS 1 burst of thousands of
    retained messages would overflow Mosquitto's default 1,000-message queue for one client).
    """
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
    time.sleep(0.5)  # anything beyond the expected count shows up too
    client.disconnect()
    client.loop_stop()
    return got


def decode_traffic(
    got: list[tuple[str, bytes, bool]], fleet: Fleet, prefix: str
) -> tuple[list[Message], Counter[tuple[str, bytes, str]]]:
    """Strictly decode what a subscriber saw: (accepted messages, rejections by reason)."""
    registry = {d.id: d.type for d in fleet.devices}
    accepted: list[Message] = []
    rejected: Counter[tuple[str, bytes, str]] = Counter()
    now_ms = int(time.time() * 1000)
    for topic, payload, _ in got:
        try:
            accepted.append(decode(topic, payload, now_ms=now_ms, registry=registry, prefix=prefix))
        except PayloadError as exc:
            rejected[(topic, payload, exc.reason.value)] += 1
    return accepted, rejected


def _elder_with(fleet: Fleet, dtype: DeviceType) -> str:
    return next(d.elder_id for d in fleet.devices if d.type is dtype)


def test_small_fleet_run(
    mqtt_url: str, topic_prefix: str, fleet: Fleet, collector: Collector, tmp_path: Path
) -> None:
    cane_elder = _elder_with(fleet, DeviceType.CANE)
    victim = next(d for d in fleet.devices if d.type is DeviceType.SMOKE)
    injections = [
        Injection("fall", cane_elder, 5),
        Injection("sos", fleet.elders[1].id, 10),
        Injection("offline", victim.id, 20),
    ]
    truth = tmp_path / "truth.jsonl"
    sim = Simulation(
        fleet,
        mqtt_url=mqtt_url,
        prefix=topic_prefix,
        seed=3,
        speed=20,
        duration_s=5,
        injections=injections,
        # About 60 telemetry and event messages: at 0.2 the chance of no malformed one is
        # ~1e-6, and the pinned start makes the draw the same on every run anyway.
        faults=FaultRates(0.2, 0.05, 0.05),
        ground_truth=truth,
        record_wire=True,
        rate_scale=0.0,
        start_ms=recent_local_morning_ms(int(time.time() * 1000)),
    )
    stats = sim.run()
    got = collector.close()
    registry = {d.id: d.type for d in fleet.devices}
    accepted, rejected = decode_traffic(got, fleet, topic_prefix)
    statuses: dict[str, list[Status]] = defaultdict(list)
    for msg in accepted:
        if isinstance(msg, Status):
            statuses[msg.device_id].append(msg)
    injected = Counter(
        (w.topic, w.payload, str(w.fault))
        for _, w in sim.wire_log or []
        if w.fault not in (None, "duplicate", "late")
    )
    assert rejected == injected and sum(injected.values()) > 0
    assert stats.published == len(got) - 1  # plus the Will the broker published
    # Status on connect for every device; the killed one's Will, published by the broker.
    assert set(statuses) == set(registry)
    will = [s for s in statuses[victim.id] if not s.online]
    assert len(will) == 1 and will[0].ts is None
    retained = retained_status(mqtt_url, topic_prefix, len(registry))
    assert set(retained) == set(registry)
    assert json.loads(retained[victim.id]) == {"v": 1, "type": "smoke", "online": False}
    assert all(json.loads(p)["online"] for d, p in retained.items() if d != victim.id)
    # Ground truth holds exactly what was injected (spontaneous rates were zero).
    incidents = read_ground_truth(truth)
    assert {(i.kind, i.real, i.elder_id) for i in incidents} == {
        ("fall", True, cane_elder),
        ("sos", True, fleet.elders[1].id),
        ("device_offline", True, victim.elder_id),
    }
    assert incidents == sim.incidents


def _received_before(got: list[tuple[str, bytes, bool]], cutoff_ms: int) -> set[tuple[str, bytes]]:
    out = set()
    for topic, payload, _ in got:
        ts = json.loads(payload).get("ts")
        if ts is not None and ts <= cutoff_ms:
            out.add((topic.split("/", 2)[-1], payload))
    return out


def test_same_seed_same_traffic(mqtt_url: str, topic_prefix: str, fleet: Fleet) -> None:
    speed, sent, received = 150.0, [], []
    for name in ("a", "b"):
        prefix = f"{topic_prefix}{name}/"
        c = Collector(mqtt_url, f"{prefix}eldercare/v1/#")
        sim = Simulation(
            fleet,
            mqtt_url=mqtt_url,
            prefix=prefix,
            seed=8,
            speed=speed,
            duration_s=3,
            start_ms=START_MS,
            record_wire=True,
        )
        sim.run()
        got = c.close()
        clear_retained(mqtt_url, got)
        per_device: dict[str, list[bytes]] = defaultdict(list)
        for device_id, wire in sim.wire_log or []:
            per_device[device_id].append(wire.payload)
        sent.append(per_device)
        received.append(_received_before(got, START_MS + int(2.5 * speed * 1000)))
    a, b = sent
    assert set(a) == set(b) == {d.id for d in fleet.devices}
    compared = 0
    for device_id, seq_a in a.items():
        n = min(len(seq_a), len(b[device_id]))
        assert seq_a[:n] == b[device_id][:n]  # same payloads, same per-device order
        compared += n
    assert compared > 3 * len(fleet.devices)
    # What the broker delivered up to a simulated time both runs reached is identical too
    # (order across QoS levels is the broker's business, MQTT-3.1.1 §4.6).
    assert received[0] == received[1] and len(received[0]) > 2 * len(fleet.devices)


def test_pooled_mode_publishes_wills_itself(
    mqtt_url: str, topic_prefix: str, fleet: Fleet, collector: Collector
) -> None:
    victim = fleet.devices[0]
    sim = Simulation(
        fleet,
        mqtt_url=mqtt_url,
        prefix=topic_prefix,
        seed=2,
        speed=10,
        duration_s=3,
        pooled=2,
        injections=[Injection("offline", victim.id, 5)],
    )
    stats = sim.run()
    got = collector.close()
    # The Will, published by the simulator for the broker, is not a device publish.
    assert stats.published == len(got) - 1 and stats.online == len(fleet.devices) - 1
    wills = [p for t, p, _ in got if t.endswith(f"/{victim.id}/status") and b"false" in p]
    assert wills == [b'{"v":1,"type":"button","online":false}']


def test_programmatic_start_inject_stop(
    mqtt_url: str, topic_prefix: str, fleet: Fleet, collector: Collector
) -> None:
    sim = Simulation(fleet, mqtt_url=mqtt_url, prefix=topic_prefix, seed=1, rate_scale=0.0)
    thread = sim.start()
    time.sleep(1.0)
    sim.inject(Injection("sos", fleet.elders[0].id))
    time.sleep(1.0)
    sim.stop()
    thread.join(10)
    assert not thread.is_alive()
    got = collector.close()
    assert any(b'"event":"press"' in p or b'"event":"long_press"' in p for _, p, _ in got)
    assert [i.kind for i in sim.incidents] == ["sos"]


def test_cli_run(
    mqtt_url: str, topic_prefix: str, fleet: Fleet, collector: Collector, tmp_path: Path
) -> None:
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet_to_dict(fleet)))
    truth = tmp_path / "gt.jsonl"
    band_elder = _elder_with(fleet, DeviceType.BAND)
    code = main(
        [
            "sim",
            "run",
            str(path),
            "--mqtt-url",
            mqtt_url,
            "--prefix",
            topic_prefix,
            "--speed",
            "10",
            "--duration",
            "2",
            "--seed",
            "4",
            "--rate-scale",
            "0",
            "--wander",
            f"{band_elder}@+1s",
            "--ground-truth",
            str(truth),
        ]
    )
    assert code == 0
    assert [(i.kind, i.elder_id) for i in read_ground_truth(truth)] == [("wandering", band_elder)]
    assert len(collector.close()) >= len(fleet.devices)
