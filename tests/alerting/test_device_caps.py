"""Per-device caps: one cane flooding valid maximum-size windows neither grows the engine's
memory past a bound nor delays another elder's SOS; a WARNING and a counter say so."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

import numpy as np
import pytest

from alerting.caps import BURST, MAX_WINDOWS, RATE_PER_S, DeviceCaps
from alerting.engine import Engine
from alerting.model import Close, Raise
from gateway import AlertKind, CaneTelemetry, DeviceType, Event, Fleet
from gateway.codec import encode, encode_message
from tests.alerting.helpers import AlertListener, DevicePublisher, prepare_db, small_fleet

T0 = 1_764_316_800_000
MAX_PAYLOAD = 16 * 1024
FLOOD_S = 30.0


class _Never:
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((len(x), 2))


def _two_elders() -> Fleet:
    a, b = small_fleet("fa"), small_fleet("fb")
    return Fleet(a.care_centers, a.elders + b.elders, a.devices + b.devices)


def _window(seq: int, ts: int, accel: tuple[tuple[float, float, float], ...]) -> CaneTelemetry:
    return CaneTelemetry(
        device_id="cane-fa", type=DeviceType.CANE, seq=seq, ts=ts, rate_hz=200, accel_g=accel
    )


def _max_accel() -> tuple[tuple[float, float, float], ...]:
    """As many samples as fit one contract-size (16 KiB) payload."""
    sample = (0.012345, -0.012345, 0.987654)
    n = 1
    while len(encode(_window(0, T0, (sample,) * (n + 1)))) <= MAX_PAYLOAD:
        n += 1
    return (sample,) * n


@pytest.mark.parametrize(
    ("gaps_ms", "admitted"),
    [
        pytest.param([0] * 700, int(BURST), id="a burst beyond the bucket"),
        pytest.param([1000] * 50, 50, id="one a second is always admitted"),
        pytest.param(
            [0] * 600 + ([1000] + [0] * 9) * 8, 600 + int(RATE_PER_S) * 8, id="refill at the rate"
        ),
    ],
)
def test_the_bucket_admits_a_burst_then_the_rate(gaps_ms: list[int], admitted: int) -> None:
    caps, now, n = DeviceCaps(), T0, 0
    for gap in gaps_ms:
        now += gap
        n += caps.admit("cane-x", now)
    assert n == admitted


def test_buffered_windows_are_bounded_per_device() -> None:
    caps = DeviceCaps()
    kept = [caps.buffer_window("cane-x", T0 + i, T0) for i in range(100)]
    assert sum(kept) == MAX_WINDOWS
    assert caps.buffer_window("cane-y", T0, T0)  # another device has its own bound
    # Device time moving on frees the buffer, as the fall detector's own horizon does.
    assert caps.buffer_window("cane-x", T0 + 60_000, T0 + 1)


@pytest.mark.slow
def test_a_flooding_cane_is_capped_and_an_sos_still_pages(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = Engine(_two_elders(), _Never(), T0)
    accel = _max_accel()
    assert len(encode(_window(0, T0, accel))) <= MAX_PAYLOAD
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        sos_latency_s = None
        actions: list[Raise | Close] = []
        with caplog.at_level(logging.WARNING, logger="alerting.caps"):
            for i in range(4000):
                # 4000 windows in 4 s of platform time, all within the detector's horizon.
                engine.on_message(_window(i, T0 + i * 2, accel), T0 + i)
                if i == 2000:
                    sos = Event(
                        device_id="btn-fb", type=DeviceType.BUTTON, seq=1, ts=T0 + i, event="press"
                    )
                    start = time.perf_counter()
                    actions = engine.on_message(sos, T0 + i)
                    sos_latency_s = time.perf_counter() - start
        grown_b = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    # The press pages at once (alerting.detectors.sos), undelayed by the flood.
    assert sos_latency_s is not None and sos_latency_s < 1.0
    assert engine.stats.over_rate + engine.stats.over_window_cap >= 4000 - MAX_WINDOWS
    # MAX_WINDOWS windows of ~700 float64 triples, plus bookkeeping: well under 4 MB, where
    # the uncapped detector holds all 4000 windows (~70 MB).
    assert grown_b < 4 * 1024 * 1024, grown_b
    warnings = [r for r in caplog.records if "cane-fa over its cap" in r.getMessage()]
    assert len(warnings) == 1  # once a minute per device, however hard it floods
    raised = [a for a in actions if isinstance(a, Raise)]
    assert [(a.elder_id, a.trigger.kind) for a in raised] == [("el-fb", AlertKind.SOS)]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_the_alerting_process_stays_bounded_under_a_flooding_cane(
    mqtt_url: str, schema_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    fleet = _two_elders()
    prepare_db(schema_url, fleet)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTT_")}
    env |= {
        "DATABASE_URL": schema_url,
        "MQTT_URL": mqtt_url,
        "ALERTING_CLIENT_ID": f"alerting-{uuid.uuid4().hex[:8]}",
        "ALERTING_OUTBOX_PATH": str(tmp_path / "outbox.sqlite3"),
    }
    log = tmp_path / "alerting.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "eldercare", "alerting", "--prefix", topic_prefix],
            env=env,
            stderr=err,
        )
    listener = AlertListener(mqtt_url, topic_prefix)
    flooder, presser = (
        DevicePublisher(mqtt_url, topic_prefix),
        DevicePublisher(mqtt_url, topic_prefix),
    )
    try:
        deadline = time.monotonic() + 90
        while "alerting ready" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        time.sleep(2.0)
        base_kib = peak_kib = _rss_kib(proc.pid)
        accel, start, seq = _max_accel(), time.monotonic(), 0
        now_ms = int(time.time() * 1000)
        sos_latency_s = None
        while time.monotonic() - start < FLOOD_S:
            for _ in range(10):
                seq += 1
                # Device time inside the fall detector's horizon: every window would be kept.
                topic, payload = encode_message(
                    _window(seq, now_ms + seq % 8000, accel), topic_prefix
                )
                flooder.client.publish(topic, payload, qos=1)
            peak_kib = max(peak_kib, _rss_kib(proc.pid))
            if sos_latency_s is None and time.monotonic() - start > FLOOD_S / 2:
                pressed = time.monotonic()
                presser.send(
                    Event(
                        device_id="btn-fb",
                        type=DeviceType.BUTTON,
                        seq=1,
                        ts=int(time.time() * 1000),
                        event="press",
                    )
                )
                _, _, at = listener.wait_for(lambda t, m: m.elder_id == "el-fb", 10)
                sos_latency_s = at - pressed
            time.sleep(0.03)  # ~300 windows/s, 5 MB/s: 100x a moving cane's rate
        assert proc.poll() is None, log.read_text()[-2000:]
    finally:
        for c in (listener, flooder, presser):
            c.close()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert sos_latency_s is not None and sos_latency_s < 1.0, sos_latency_s
    grown_mib = (peak_kib - base_kib) / 1024
    # Capped, the process holds MAX_WINDOWS windows of this cane (~0.5 MB) plus the bounded
    # inbox; uncapped, the fall detector keeps every window inside its 16 s horizon, here all
    # ~4,000 of them at ~13 KB of float64 each: over 50 MB.
    assert grown_mib < 30, f"{grown_mib:.0f} MiB after {seq} windows"
    assert "cane-fa over its cap" in text
    print(
        f"flood of {seq} windows: RSS {base_kib / 1024:.0f} -> peak {peak_kib / 1024:.0f} MiB; "
        f"SOS alert after {sos_latency_s * 1000:.0f} ms"
    )
