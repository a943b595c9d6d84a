"""An SOS overtakes a broker-side backlog of 100,000 band fixes (own broker, shipped config).

A broker delivers one session's messages in order, so only a separate session for events and
statuses lets the press past the fixes queued before it.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from gateway import AlertKind, BandTelemetry, DeviceType, Event, encode_message
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

BACKLOG = 100_000
# The press is handled within one drain cycle of the backlog; a loaded 2-core machine gets a
# wide margin over the one-second goal.
SOS_BOUND_S = 5.0


def _fixes(suffix: str, prefix: str, count: int, ts0: int) -> tuple[str, bytes]:
    lines = []
    topic = ""
    for seq in range(1, count + 1):
        fix = BandTelemetry(
            device_id=f"band-{suffix}",
            type=DeviceType.BAND,
            seq=seq,
            ts=ts0 + seq,
            lat=HOME[0],
            lon=HOME[1],
            hacc_m=5.0,
            hr_bpm=68 + seq % 9,
            steps=seq % 4,
            worn=True,
        )
        topic, payload = encode_message(fix, prefix)
        assert b"\n" not in payload
        lines.append(payload)
    return topic, b"\n".join(lines) + b"\n"


@pytest.mark.slow
def test_an_sos_behind_100000_fixes_is_alerted_within_a_second(
    tmp_path: Path, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    ts0 = int(time.time() * 1000) - BACKLOG
    topic, lines = _fixes(device_suffix, topic_prefix, BACKLOG, ts0)
    with private_broker(tmp_path) as broker:
        url, port = broker.url, broker.port
        listener = AlertListener(url, topic_prefix)
        devices = DevicePublisher(url, topic_prefix)
        settings = settings_for(url, schema_url, topic_prefix, share_group="")
        with running(settings) as service:
            # C publisher: the whole backlog reaches the broker in a few seconds.
            subprocess.run(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-l"],
                input=lines,
                check=True,
                timeout=300,
            )
            before = service.stats.received
            pressed = time.monotonic()
            devices.send(
                Event(
                    device_id=f"btn-{device_suffix}",
                    type=DeviceType.BUTTON,
                    seq=0,
                    ts=int(time.time() * 1000),
                    event="press",
                )
            )
            _, alert, at = listener.wait_for(lambda t, m: m.kind is AlertKind.SOS, 60)
            latency_s = at - pressed
            behind = BACKLOG - service.stats.received
        listener.close()
        devices.close()
    assert alert.device_id == f"btn-{device_suffix}"
    # The press really was behind a backlog: most fixes were still waiting when it paged.
    assert before < BACKLOG // 2 and behind > BACKLOG // 4, (before, behind)
    assert latency_s < SOS_BOUND_S, f"SOS took {latency_s:.2f} s behind {behind} fixes"
