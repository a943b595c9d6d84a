"""Catch-up from stored readings after a restart, and the `eldercare alerts` commands."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from alerting import store
from eldercare.cli import main
from gateway import AlertStatus
from tests.alerting.helpers import AlertListener, prepare_db, running, settings_for, small_fleet


def _store_press(schema_url: str, device_id: str, ts_ms: int, seq: int) -> None:
    """Store a press as ingest does while the alerting service is down."""
    with psycopg.connect(schema_url) as conn:
        conn.execute(
            "SELECT ensure_week_partitions('device_events', ARRAY[to_timestamp(%s)])",
            (ts_ms / 1000,),
        )
        conn.execute(
            "INSERT INTO device_events (time, device_id, seq, type, event, received_at)"
            " VALUES (to_timestamp(%s), %s, %s, 'button', 'press', now())",
            (ts_ms / 1000, device_id, seq),
        )
        conn.commit()


def test_press_stored_while_down_is_alerted_once(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    ts = int(time.time() * 1000) - 5_000
    _store_press(schema_url, f"btn-{device_suffix}", ts, 7)
    settings = settings_for(mqtt_url, schema_url, topic_prefix)
    listener = AlertListener(mqtt_url, topic_prefix)
    try:
        with running(settings) as service:
            _, alert, _ = listener.next(5)
            assert service.stats.caught_up >= 1
        assert alert.event_ts == ts and alert.status is AlertStatus.OPEN
        with psycopg.connect(schema_url) as conn:
            store.transition(
                conn, alert.alert_id, AlertStatus.RESOLVED, "disp-1", "", int(time.time() * 1000)
            )
        # The same stored press replayed after the alert was resolved: nothing new.
        with running(settings):
            time.sleep(1.0)
        with psycopg.connect(schema_url) as conn:
            assert [a.alert_id for a in store.list_alerts(conn)] == [alert.alert_id]
    finally:
        listener.close()


def test_alerts_cli_ack_resolve_list(
    mqtt_url: str,
    schema_url: str,
    topic_prefix: str,
    device_suffix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    _store_press(schema_url, f"btn-{device_suffix}", int(time.time() * 1000) - 2_000, 1)
    monkeypatch.setenv("DATABASE_URL", schema_url)
    monkeypatch.setenv("MQTT_URL", mqtt_url)
    listener = AlertListener(mqtt_url, topic_prefix)
    try:
        with running(settings_for(mqtt_url, schema_url, topic_prefix)):
            _, alert, _ = listener.next(5)
        capsys.readouterr()
        assert (
            main(
                [
                    "alerts",
                    "ack",
                    alert.alert_id,
                    "--by",
                    "disp-9",
                    "--note",
                    "calling",
                    "--prefix",
                    topic_prefix,
                ]
            )
            == 0
        )
        _, acked, _ = listener.next(5)
        assert acked.status is AlertStatus.ACKNOWLEDGED
        assert main(["alerts", "ack", alert.alert_id, "--by", "disp-9"]) == 1
        assert (
            main(["alerts", "resolve", alert.alert_id, "--by", "disp-9", "--prefix", topic_prefix])
            == 0
        )
        _, resolved, _ = listener.next(5)
        assert resolved.status is AlertStatus.RESOLVED
        capsys.readouterr()
        assert main(["alerts", "list", "--json"]) == 0
        (line,) = capsys.readouterr().out.strip().splitlines()
        assert json.loads(line)["status"] == "resolved"
        assert main(["alerts", "list", "--active"]) == 0
        assert capsys.readouterr().out == ""
    finally:
        listener.close()
