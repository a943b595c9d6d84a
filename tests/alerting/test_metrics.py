"""Operability of the alerting service: Prometheus metrics, /healthz and /readyz."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

from alerting.service import AlertingService
from eldercare.broker import free_port
from gateway import AlertKind, DeviceType, Event
from tests.alerting.helpers import (
    AlertListener,
    DevicePublisher,
    prepare_db,
    running,
    settings_for,
    small_fleet,
)


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return int(reply.status), reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _refused(port: int) -> bool:
    try:
        _get(port, "/healthz")
    except urllib.error.URLError:
        return True
    return False


def _value(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{sample} not in the metrics")


def test_metrics_health_and_readiness(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    port = free_port()
    settings = settings_for(mqtt_url, schema_url, topic_prefix, metrics_port=port)
    listener = AlertListener(mqtt_url, topic_prefix)
    devices = DevicePublisher(mqtt_url, topic_prefix)
    try:
        with running(settings):
            assert _get(port, "/healthz")[0] == 200
            deadline = time.monotonic() + 10
            while _get(port, "/readyz")[0] != 200:
                assert time.monotonic() < deadline, "never ready"
                time.sleep(0.1)
            ts = int(time.time() * 1000)
            devices.send(
                Event(
                    device_id=f"btn-{device_suffix}",
                    type=DeviceType.BUTTON,
                    seq=1,
                    ts=ts,
                    event="press",
                )
            )
            devices.client.publish(
                f"{topic_prefix}eldercare/v1/devices/btn-{device_suffix}/events", b"{not json", 1
            ).wait_for_publish(5)
            listener.wait_for(lambda t, m: m.kind is AlertKind.SOS, 10)
            time.sleep(1.0)
            code, text = _get(port, "/metrics")
        stopped = _refused(port)  # the endpoint stops with the service
    finally:
        listener.close()
        devices.close()
    assert code == 200 and stopped
    assert _value(text, "alerting_received_total") == 2
    assert _value(text, "alerting_invalid_total") == 1
    assert _value(text, 'alerting_alerts_total{kind="sos"}') == 1
    assert _value(text, "alerting_published_total") >= 1
    assert _value(text, "alerting_triggers_total") >= 1
    assert _value(text, "alerting_database_up") == 1
    assert _value(text, "alerting_broker_connected") == 1
    assert _value(text, "alerting_inbox_depth") == 0
    assert _value(text, "alerting_outbox_depth") == 0
    assert _value(text, "alerting_oldest_unacknowledged_seconds") >= 0.5
    assert _value(text, "alerting_last_tick_timestamp_seconds") > ts / 1000 - 5
    assert _value(text, "alerting_anomaly_baselines") == 0  # no band has history here
    assert _value(text, "alerting_anomaly_memory_bytes") >= 0
    assert 'alerting_suppressed_inputs_total{reason="invalid"} 1.0' in text
    assert 'alerting_suppressed_inputs_total{reason="duplicates"}' in text


def test_a_standby_is_live_but_not_ready(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    """A container probe sees the standby alive (/healthz) and not acting (/readyz 503)."""
    prepare_db(schema_url, small_fleet(device_suffix))
    active = settings_for(mqtt_url, schema_url, topic_prefix)
    port = free_port()
    standby = active.model_copy(update={"metrics_port": port})
    with running(active):
        service = AlertingService(standby)
        stop = threading.Event()
        thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while _refused(port):
                assert time.monotonic() < deadline, "no health endpoint while standing by"
                time.sleep(0.1)
            time.sleep(1.5)  # more than a lock poll: still standing by
            assert not service.ready.is_set()
            assert _get(port, "/healthz")[0] == 200
            assert _get(port, "/readyz")[0] == 503
        finally:
            stop.set()
            thread.join(15)
    assert _refused(port)
