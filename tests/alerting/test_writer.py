"""The alert writer: capacity counts incidents only; repeated triggers do not flood a feed."""

from __future__ import annotations

import queue
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from alerting import store
from alerting.dispatch import Dispatcher
from alerting.model import Raise, Trigger
from alerting.writer import AlertWriter
from gateway import AlertKind, DeviceType, Event, Severity
from tests.alerting.helpers import (
    AlertListener,
    DevicePublisher,
    prepare_db,
    running,
    settings_for,
    small_fleet,
)

NOW = 1_760_000_000_000


def test_low_battery_notices_do_not_send_a_fall_to_another_centre(
    schema_url: str, device_suffix: str
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    near, far = fleet.care_centers
    published: list[str] = []
    with psycopg.connect(schema_url) as conn:
        writer = AlertWriter(
            conn, Dispatcher(fleet.care_centers), lambda t, p: published.append(t), ""
        )
        writer.centers = {c.id: c for c in fleet.care_centers}
        for i in range(near.capacity):
            low = Trigger(AlertKind.LOW_BATTERY, Severity.LOW, f"band-{i}", NOW, "battery 8 %")
            notice = writer.apply(Raise(f"el-{device_suffix}-{i}", low, near.lat, near.lon), NOW)
            assert notice is not None and notice.center_id == near.id
        fall = Trigger(AlertKind.FALL, Severity.CRITICAL, f"cane-{device_suffix}", NOW, "fall")
        lat = near.lat + 28 / 111_320  # 28 m north of the nearest centre
        alert = writer.apply(Raise(f"el-{device_suffix}", fall, lat, near.lon), NOW + 1)
    assert alert is not None
    assert (alert.center_id, alert.in_coverage, alert.over_capacity) == (near.id, True, False)
    assert far.id not in published[-1]


def test_a_held_button_gives_one_alert_and_a_bounded_number_of_feed_messages(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    listener = AlertListener(mqtt_url, topic_prefix)
    devices = DevicePublisher(mqtt_url, topic_prefix)
    ts = int(time.time() * 1000)
    try:
        with running(settings_for(mqtt_url, schema_url, topic_prefix)):
            for seq in range(50):
                press = Event(
                    device_id=f"btn-{device_suffix}",
                    type=DeviceType.BUTTON,
                    seq=seq,
                    ts=ts + seq * 100,
                    event="long_press",
                )
                devices.send(press)
                time.sleep(0.1)
            time.sleep(2.0)  # let the last presses through
        seen = []
        while True:
            try:
                seen.append(listener.next(0.5)[1])
            except queue.Empty:
                break
    finally:
        listener.close()
        devices.close()
    assert {m.alert_id for m in seen} == {seen[0].alert_id}
    # One message for the new alert, at most one refresh per 30 s (REFRESH_PUBLISH_S).
    assert 1 <= len(seen) <= 2, f"{len(seen)} feed messages for one held button"
    with psycopg.connect(schema_url) as conn:
        (alert,) = store.list_alerts(conn)
    assert alert.last_event_ts == ts + 49 * 100


HUNG_THEN_EXIT = """
import sys
import psycopg
from alerting import store
from alerting.dispatch import Dispatcher
from alerting.writer import AlertWriter
from tests.alerting.helpers import CuttableProxy

url = sys.argv[1]
proxy = CuttableProxy(("127.0.0.1", 5432))
conn = psycopg.connect(url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
writer = AlertWriter(conn, Dispatcher(()), lambda t, p: None, "")
writer.db_deadline_s = 0.5
writer.refresh_active()
proxy.cut()
try:
    writer.refresh_active()
except psycopg.OperationalError as exc:
    print("deadline:", exc, flush=True)
print("hung:", writer.hung(), flush=True)
"""


def test_a_process_whose_database_call_hangs_still_exits(schema_url: str) -> None:
    """A call abandoned on a black-holed connection must not hold the interpreter's exit."""
    prepare_db(schema_url, small_fleet("hang"))
    done = subprocess.run(
        [sys.executable, "-c", HUNG_THEN_EXIT, schema_url],
        capture_output=True,
        text=True,
        timeout=60,  # with the call's thread joined at exit, it never ends
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert "deadline: no answer from the database in 0.5 s" in done.stdout
    assert "hung: True" in done.stdout
