"""Registry reloads happen off the message loop and only when the registry changed."""

from __future__ import annotations

import threading
import time

import psycopg

from alerting.fleet_reload import FleetReloader
from gateway import DeviceType, Event
from ingest.registry import registry_version
from tests.alerting.helpers import (
    HOME,
    AlertListener,
    DevicePublisher,
    prepare_db,
    running,
    settings_for,
    small_fleet,
)


def _version(url: str) -> int:
    with psycopg.connect(url) as conn:
        version = registry_version(conn)
    assert version is not None
    return version


def test_version_moves_with_the_registry_and_not_with_duty(
    schema_url: str, device_suffix: str
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    start = _version(schema_url)
    reloader = FleetReloader(lambda: psycopg.connect(schema_url), start, 3600)
    reloader.check_now()
    assert reloader.take() is None and reloader.loads == 0
    with psycopg.connect(schema_url) as conn:
        conn.execute("UPDATE care_centers SET on_duty = false")
    assert _version(schema_url) == start  # a duty switch is read by the centre reload
    reloader.check_now()
    assert reloader.take() is None
    with psycopg.connect(schema_url) as conn:
        conn.execute(
            "INSERT INTO devices (id, type, elder_id) VALUES (%s, 'button', %s)",
            (f"btn2-{device_suffix}", f"el-{device_suffix}"),
        )
    assert _version(schema_url) > start
    reloader.check_now()
    fresh = reloader.take()
    assert fresh is not None and f"btn2-{device_suffix}" in {d.id for d in fresh.devices}
    assert reloader.take() is None  # handed over once
    reloader.check_now()
    assert reloader.take() is None and reloader.loads == 1
    with psycopg.connect(schema_url) as conn:
        conn.execute("UPDATE elders SET safe_radius_m = 500")
    reloader.check_now()
    assert reloader.take() is not None


def test_an_sos_is_not_held_behind_a_slow_registry_load(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    """A registry load that takes long (here: blocked by a lock on `families`; at district scale:
    seconds of loading) used to run on the message loop and hold every alert behind it."""
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    settings = settings_for(mqtt_url, schema_url, topic_prefix, fleet_reload_s=0.3)
    listener = AlertListener(mqtt_url, topic_prefix)
    devices = DevicePublisher(mqtt_url, topic_prefix)
    new_button = f"btn2-{device_suffix}"
    locker = psycopg.connect(schema_url)
    try:
        with running(settings) as service:
            with psycopg.connect(schema_url) as conn:  # a new elder with a button
                conn.execute(
                    "INSERT INTO elders (id, name, home_lat, home_lon) VALUES (%s, 'N', %s, %s)",
                    (f"el2-{device_suffix}", *HOME),
                )
                conn.execute(
                    "INSERT INTO devices (id, type, elder_id) VALUES (%s, 'button', %s)",
                    (new_button, f"el2-{device_suffix}"),
                )
            locker.execute("LOCK TABLE families IN ACCESS EXCLUSIVE MODE")
            time.sleep(2.0)  # the reloader has seen the new version and waits for the lock
            ts = int(time.time() * 1000)
            sent = time.monotonic()
            devices.send(
                Event(
                    device_id=f"btn-{device_suffix}",
                    type=DeviceType.BUTTON,
                    seq=1,
                    ts=ts,
                    event="press",
                )
            )
            _, alert, got = listener.next(10)
            assert alert.device_id == f"btn-{device_suffix}"
            assert got - sent < 3.0, f"SOS waited {got - sent:.1f} s behind the registry load"
            assert service.engine is not None and service.engine.device(new_button) is None
            released = threading.Timer(0.5, locker.rollback)
            released.start()
            deadline = time.monotonic() + 15
            while service.engine.device(new_button) is None:
                assert time.monotonic() < deadline, "the new device was never adopted"
                time.sleep(0.1)
            devices.send(
                Event(device_id=new_button, type=DeviceType.BUTTON, seq=1, ts=ts, event="press")
            )
            _, second, _ = listener.wait_for(lambda t, m: m.device_id == new_button, 10)
            assert second.elder_id == f"el2-{device_suffix}"
    finally:
        locker.close()
        listener.close()
        devices.close()
