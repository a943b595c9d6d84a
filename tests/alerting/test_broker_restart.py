"""The alerting service across a broker restart (its own Mosquitto, persistence on)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from eldercare.broker import broker_reachable, free_port, start_mosquitto, stop
from gateway import AlertKind, AlertStatus, DeviceType, Event
from tests.alerting.helpers import (
    AlertListener,
    DevicePublisher,
    prepare_db,
    running,
    settings_for,
    small_fleet,
)


def _press(suffix: str, seq: int, ts: int) -> Event:
    return Event(device_id=f"btn-{suffix}", type=DeviceType.BUTTON, seq=seq, ts=ts, event="press")


@pytest.mark.slow
def test_alerts_keep_flowing_after_the_broker_restarts(
    tmp_path: Path, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    port = free_port()
    data_dir = tmp_path / "mosquitto"
    proc = start_mosquitto(port, data_dir)
    url = f"mqtt://127.0.0.1:{port}"
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    try:
        with running(settings_for(url, schema_url, topic_prefix, share_group="")) as service:
            stop(proc)
            assert not broker_reachable(url)
            proc = start_mosquitto(port, data_dir)
            # The persistent session (subscription included) is restored from the broker's
            # persistence file: a device may publish before the service has reconnected.
            devices = DevicePublisher(url, topic_prefix)
            devices.send(_press(device_suffix, 1, int(time.time() * 1000)))
            listener = AlertListener(url, topic_prefix)
            deadline = time.monotonic() + 30
            while not service.raised() and time.monotonic() < deadline:
                time.sleep(0.1)
            raised = service.raised()
            devices.close()
            listener.close()
        assert [(a.kind, a.status) for a in raised] == [(AlertKind.SOS, AlertStatus.OPEN)]
    finally:
        stop(proc)
