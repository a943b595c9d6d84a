"""The inbox: a priority lane for events and statuses, bounded under a backlog (own broker
with the shipped config, which lets 4,000 QoS 1 messages be in flight per client)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from alerting.mqtt import Inbound, Inbox
from gateway import AlertKind, BandTelemetry, DeviceType, Event
from tests.alerting.helpers import (
    HOME,
    AlertListener,
    DevicePublisher,
    prepare_db,
    private_broker,
    running,
    settings_for,
    small_fleet,
)


def _inbound(topic: str, mid: int) -> Inbound:
    return Inbound(topic, b"{}", mid, 1, 0)


def test_events_and_statuses_overtake_telemetry_and_each_lane_keeps_its_order() -> None:
    inbox = Inbox(8)
    for mid in range(5):
        inbox.put(_inbound("eldercare/v1/devices/band-1/telemetry", mid))
    inbox.put(_inbound("eldercare/v1/devices/btn-1/events", 100))
    inbox.put(_inbound("eldercare/v1/devices/band-1/status", 101))
    got = []
    while (item := inbox.get(0.01)) is not None:
        got.append(item.mid)
    assert got == [100, 101, 0, 1, 2, 3, 4]
    assert inbox.qsize() == 0


def test_a_full_lane_blocks_the_producer_until_the_loop_takes_one() -> None:
    inbox = Inbox(2)
    for mid in range(2):
        inbox.put(_inbound("p/eldercare/v1/devices/b/telemetry", mid))
    done = threading.Event()

    def produce() -> None:
        inbox.put(_inbound("p/eldercare/v1/devices/b/telemetry", 2))
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    assert not done.wait(0.3), "a full lane must block the network thread"
    # The other lane is not blocked by a telemetry backlog.
    inbox.put(_inbound("p/eldercare/v1/devices/b/events", 9))
    assert [inbox.get(0.1).mid for _ in range(2)] == [9, 0]  # type: ignore[union-attr]
    assert done.wait(2)
    assert inbox.qsize() == 2


def _fix(suffix: str, seq: int, ts: int) -> BandTelemetry:
    return BandTelemetry(
        device_id=f"band-{suffix}",
        type=DeviceType.BAND,
        seq=seq,
        ts=ts,
        lat=HOME[0],
        lon=HOME[1],
        hacc_m=5.0,
        hr_bpm=72,
    )


@pytest.mark.slow
def test_inbox_stays_bounded_while_the_database_stalls_and_nothing_is_lost(
    tmp_path: Path, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    flood = 1500
    with private_broker(tmp_path) as broker:
        url = broker.url
        settings = settings_for(
            url, schema_url, topic_prefix, share_group="", inbox_size=20, db_deadline_s=None
        )
        listener = AlertListener(url, topic_prefix)
        devices = DevicePublisher(url, topic_prefix)
        with running(settings) as service, psycopg.connect(schema_url) as blocker:
            blocker.execute("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE")
            ts = int(time.time() * 1000)
            devices.send(
                Event(
                    device_id=f"btn-{device_suffix}",
                    type=DeviceType.BUTTON,
                    seq=0,
                    ts=ts,
                    event="press",
                )
            )
            deepest = 0
            for seq in range(1, flood + 1):
                devices.send(_fix(device_suffix, seq, ts + seq))
                if seq % 50 == 0:
                    deepest = max(deepest, service.inbox.qsize())
            time.sleep(1.0)
            deepest = max(deepest, service.inbox.qsize())
            blocker.rollback()  # the database answers again
            _, alert, _ = listener.wait_for(lambda t, m: m.kind is AlertKind.SOS, 20)
            deadline = time.monotonic() + 60
            while service.stats.received < flood + 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            received = service.stats.received
        listener.close()
        devices.close()
    # Receive Maximum 20 (and a blocking put): never more than one lane's worth waiting.
    assert deepest <= 2 * 20, f"inbox grew to {deepest} messages"
    assert alert.device_id == f"btn-{device_suffix}"
    assert received == flood + 1
