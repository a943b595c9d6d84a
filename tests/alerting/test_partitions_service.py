"""Two alerting partitions over the real broker and database: each alert once, by its owner."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import psycopg

from alerting import store
from alerting.partition import partition_of
from gateway import (
    AlertKind,
    AlertStatus,
    BandTelemetry,
    DeviceType,
    Event,
    Fleet,
    Status,
    parse_fleet,
)
from tests.alerting.helpers import (
    HOME,
    AlertListener,
    DevicePublisher,
    prepare_db,
    running,
    settings_for,
)

_TYPES = ("button", "band", "cane", "smoke")


def _elders(suffix: str, per_partition: int) -> list[str]:
    """Elder ids with at least `per_partition` in each of two partitions."""
    ids: list[str] = []
    i = 0
    while min(sum(partition_of(e, 2) == k for e in ids) for k in (0, 1)) < per_partition:
        ids.append(f"el-{suffix}-{i}")
        i += 1
    return ids


def _fleet(elders: list[str]) -> Fleet:
    centre = {"capacity": 50, "coverage_km2": 1.0, "name": "x"}
    return parse_fleet(
        {
            "care_centers": [
                {"id": f"cc-a-{elders[0]}", "lat": 39.9310, "lon": 116.3710, **centre},
                {"id": f"cc-b-{elders[0]}", "lat": 39.9500, "lon": 116.3900, **centre},
            ],
            "elders": [
                {"id": e, "name": "T", "home_lat": HOME[0], "home_lon": HOME[1]} for e in elders
            ],
            "devices": [
                {"id": f"{t}-{e}", "type": t, "elder_id": e, "heartbeat_s": 300}
                for e in elders
                for t in _TYPES
            ],
        }
    )


def _fix(elder: str, seq: int, ts: int) -> BandTelemetry:
    return BandTelemetry(
        device_id=f"band-{elder}",
        type=DeviceType.BAND,
        seq=seq,
        ts=ts,
        lat=HOME[0] + seq * 1e-6,
        lon=HOME[1],
        hacc_m=8.0,
        steps=10,
    )


def test_two_partitions_raise_each_alert_once_by_the_owner_and_escalate_only_their_own(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    elders = _elders(device_suffix, 3)
    prepare_db(schema_url, _fleet(elders))
    listener = AlertListener(mqtt_url, topic_prefix)
    devices = DevicePublisher(mqtt_url, topic_prefix)
    base = settings_for(
        mqtt_url, schema_url, topic_prefix, will_grace_s=0.5, escalate_critical_s=2.0
    )
    fixes = 20
    try:
        with (
            running(base.model_copy(update={"partitions": 2, "partition": 0})) as p0,
            running(base.model_copy(update={"partitions": 2, "partition": 1})) as p1,
        ):
            parts = (p0, p1)
            ts = int(time.time() * 1000)
            for seq in range(fixes):  # interleaved across elders, in order per device
                for elder in elders:
                    devices.send(_fix(elder, seq, ts - (fixes - seq) * 1000))
            for elder in elders:
                button = f"button-{elder}"
                devices.send(
                    Event(device_id=button, type=DeviceType.BUTTON, seq=100, ts=ts, event="press")
                )
                smoke = f"smoke-{elder}"
                devices.send(
                    Event(device_id=smoke, type=DeviceType.SMOKE, seq=100, ts=ts, event="alarm")
                )
                devices.send(Status(device_id=f"cane-{elder}", type=DeviceType.CANE, online=False))
            want = {(e, k) for e in elders for k in ("sos", "smoke", "device_offline")}
            opened: dict[tuple[str, str], set[str]] = {}
            deadline = time.monotonic() + 30
            while set(opened) != want:
                assert time.monotonic() < deadline, f"missing {want - set(opened)}"
                _, msg, _ = listener.next(max(0.1, deadline - time.monotonic()))
                opened.setdefault((msg.elder_id, msg.kind.value), set()).add(msg.alert_id)
            # Take one SOS of each partition; the others escalate after 2 s, once each.
            with psycopg.connect(schema_url) as conn:
                sos = {a.elder_id: a for a in store.active_alerts(conn) if a.kind is AlertKind.SOS}
            taken = [next(e for e in elders if partition_of(e, 2) == k) for k in (0, 1)]
            with psycopg.connect(schema_url) as conn:
                for elder in taken:
                    store.transition(
                        conn, sos[elder].alert_id, AlertStatus.ACKNOWLEDGED, "d1", "", ts
                    )
            time.sleep(4.0)
            for k, part in enumerate(parts):
                assert part.writer is not None and part.engine is not None
                owned = {a.elder_id for a in part.writer.active.values()}
                assert owned and all(partition_of(e, 2) == k for e in owned), (k, owned)
                assert {a.elder_id for a in part.raised()} == {
                    e for e in elders if partition_of(e, 2) == k
                }
                # Per-device order: no fix arrived after a newer one, and the newest is last.
                assert part.engine.stats.late_fixes == 0
                own = [e for e in elders if partition_of(e, 2) == k]
                for elder in own:
                    newest = part.engine._positions[f"band-{elder}"][1]
                    assert newest == HOME[0] + (fixes - 1) * 1e-6
                others = len(elders) - len(own)
                # Telemetry comes per device to its owner only; events and statuses to both.
                assert part.stats.other_partition == others * 3
                assert part.engine.stats.unknown_devices == 0
                assert part._suppressed()["other_partition"] == part.stats.other_partition
        time.sleep(0.5)
        while not listener.alerts.empty():  # escalations and reminders of the same alerts
            _, msg, _ = listener.next(0.1)
            opened.setdefault((msg.elder_id, msg.kind.value), set()).add(msg.alert_id)
        assert all(len(ids) == 1 for ids in opened.values()), opened
        with psycopg.connect(schema_url) as conn:
            alerts = store.list_alerts(conn, limit=1000)
            raised = Counter((a.elder_id, a.kind.value) for a in alerts)
            assert set(raised) == want and all(n == 1 for n in raised.values()), raised
            for a in alerts:
                if a.kind is not AlertKind.SOS:
                    continue
                notes = [note for *_, note in store.history(conn, a.alert_id)]
                escalated = notes.count("escalated: unanswered")
                assert escalated == (0 if a.elder_id in taken else 1), (a.elder_id, notes)
    finally:
        listener.close()
        devices.close()


def _band_fix(device_id: str, seq: int) -> BandTelemetry:
    return BandTelemetry(
        device_id=device_id,
        type=DeviceType.BAND,
        seq=seq,
        ts=int(time.time() * 1000),
        lat=HOME[0] + seq * 1e-6,
        lon=HOME[1],
        hacc_m=8.0,
    )


def test_a_partition_subscribes_a_new_device_and_hands_it_over_when_it_moves_elder(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    """Telemetry reaches only the partition of the device's elder, following registry
    reloads: a device registered while running, then linked to an elder of the other one."""
    elders = _elders(device_suffix, 1)
    prepare_db(schema_url, _fleet(elders))
    owner = {k: next(e for e in elders if partition_of(e, 2) == k) for k in (0, 1)}
    devices = DevicePublisher(mqtt_url, topic_prefix)
    base = settings_for(mqtt_url, schema_url, topic_prefix, fleet_reload_s=0.3)
    band = f"band2-{device_suffix}"
    seq = 0

    def deliver(part: Any, other: Any) -> None:
        """Fixes until `part` places the band, then 5 more: `other` receives none of them."""
        nonlocal seq
        deadline = time.monotonic() + 15
        while part.engine._positions.get(band, (0, 0.0))[1] != HOME[0] + seq * 1e-6:
            assert time.monotonic() < deadline, "the band's fixes never reached its partition"
            seq += 1
            devices.send(_band_fix(band, seq))
            time.sleep(0.2)
        time.sleep(0.5)  # the other's filter change has surely been answered by now
        before = other.stats.other_partition, other.stats.received
        for _ in range(5):
            seq += 1
            devices.send(_band_fix(band, seq))
        deadline = time.monotonic() + 10
        while part.engine._positions[band][1] != HOME[0] + seq * 1e-6:
            assert time.monotonic() < deadline, "the last fixes never reached the partition"
            time.sleep(0.05)
        time.sleep(0.3)
        assert (other.stats.other_partition, other.stats.received) == before

    try:
        with (
            running(base.model_copy(update={"partitions": 2, "partition": 0})) as p0,
            running(base.model_copy(update={"partitions": 2, "partition": 1})) as p1,
        ):
            with psycopg.connect(schema_url) as conn:
                conn.execute(
                    "INSERT INTO devices (id, type, elder_id) VALUES (%s, 'band', %s)",
                    (band, owner[0]),
                )
            deliver(p0, p1)
            with psycopg.connect(schema_url) as conn:
                conn.execute("UPDATE devices SET elder_id = %s WHERE id = %s", (owner[1], band))
            deadline = time.monotonic() + 15
            while p0.engine.device(band) is not None or p1.engine.device(band) is None:
                assert time.monotonic() < deadline, "the move was never adopted"
                time.sleep(0.1)
            deliver(p1, p0)
    finally:
        devices.close()
