"""A fall stored while every alerting process was down is alerted once, after the restart.

The live fall detector is caught up on the last minute of stored windows only; a fall older
than that, beyond what the broker kept queued, is found by `alerting.late_falls` from the
windows ingest stored around its impact.
"""

from __future__ import annotations

import time

import numpy as np
import psycopg
import pytest

from alerting import store
from alerting.detectors import FallDetector
from alerting.fall_features import IMPACT_G
from alerting.fall_model import load_fall_model
from alerting.late_falls import LEAD_S, STEP_WINDOWS, TRAIL_S, LateFalls, spans
from alerting.model import Finding, Trigger
from alerting.service import AlertingService
from alerting.settings import AlertingSettings
from firmware_sim.cane import _drop_cane, cane_windows, episode, rest_samples, walk_samples
from gateway import AlertKind, AlertStatus, CaneTelemetry, DeviceType, Severity
from ingest import readback
from ingest.batch import Batch
from ingest.db import BatchWriter
from ingest.migrate import storage_mode
from ingest.settings import WriteMethod
from tests.alerting.helpers import (
    AlertListener,
    CuttableProxy,
    prepare_db,
    running,
    settings_for,
    small_fleet,
    wait_until,
)

RATE_HZ = 50
FALL_SEED = 900_000
RECV_LAG_MS = 250


def _windows(
    device_id: str, samples: np.ndarray, first_ts: int, first_seq: int
) -> list[CaneTelemetry]:
    """The cane messages of `samples`, one 2 s window each, the first ending at `first_ts`."""
    return [
        CaneTelemetry(
            device_id=device_id,
            type=DeviceType.CANE,
            seq=first_seq + i,
            ts=first_ts + i * 2000,
            rate_hz=RATE_HZ,
            accel_g=tuple((float(x), float(y), float(z)) for x, y, z in window),
        )
        for i, window in enumerate(cane_windows(samples, RATE_HZ))
    ]


def _store(schema_url: str, windows: list[CaneTelemetry]) -> None:
    """Store windows as ingest does, each received RECV_LAG_MS after its ts."""
    with psycopg.connect(schema_url) as conn:
        batch = Batch()
        for window in windows:
            batch.add(window, window.ts + RECV_LAG_MS)
        BatchWriter(WriteMethod.UNNEST, storage_mode(conn)).write(conn, batch)


def _fall_windows(device_id: str, first_ts: int) -> list[CaneTelemetry]:
    """A simulated fall the shipped model raises when streamed live (checked here)."""
    ep = episode("fall", np.random.default_rng(FALL_SEED), RATE_HZ)
    windows = _windows(device_id, ep.samples, first_ts, 100)
    model = load_fall_model()
    live = FallDetector(model.classifier, threshold=model.threshold)
    found = [f for w in windows for f in live.on_window(w, w.ts + RECV_LAG_MS)]
    found += live.tick(windows[-1].ts + 120_000)
    assert any(isinstance(f, Trigger) and f.kind is AlertKind.FALL for f in found), (
        "precondition: the live detector raises this fall"
    )
    return windows


def _settings(mqtt_url: str, schema_url: str, topic_prefix: str) -> AlertingSettings:
    return settings_for(mqtt_url, schema_url, topic_prefix)


def test_spans_merge_impacts_of_one_walk() -> None:
    lead, trail = int(LEAD_S * 1000), int(TRAIL_S * 1000)
    assert spans([]) == []
    assert spans([10_000_000]) == [(10_000_000 - lead, 10_000_000 + trail)]
    # Impacts two seconds apart (a walk striking the floor) make one span; one far later its own.
    far = 10_004_000 + trail + lead + 1
    merged = spans([10_002_000, 10_000_000, far, 10_004_000])
    assert merged == [(10_000_000 - lead, 10_004_000 + trail), (far - lead, far + trail)]


def test_stored_peaks_find_impacts_only(schema_url: str, device_suffix: str) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    cane = f"cane-{device_suffix}"
    now = int(time.time() * 1000)
    rest = _windows(cane, rest_samples(20 * RATE_HZ, np.random.default_rng(1)), now - 600_000, 0)
    fall = _fall_windows(cane, now - 500_000)
    _store(schema_url, rest + fall)
    with psycopg.connect(schema_url) as conn:
        peaks: dict[int, float] = dict(
            conn.execute("SELECT seq, peak_g FROM cane_telemetry WHERE device_id = %s", (cane,))
        )
        impacts = readback.cane_impacts(conn, now - 700_000, now, 1.6)
        with pytest.raises(ValueError, match="min_peak_g"):
            readback.cane_impacts(conn, now - 700_000, now, 1.2)
    for w in rest + fall:
        expected = max(float(np.linalg.norm(s)) for s in w.accel_g)
        assert peaks[w.seq] == pytest.approx(expected, rel=1e-6)
    want = sorted((cane, w.ts) for w in fall if max(map(np.linalg.norm, w.accel_g)) >= 1.6)
    assert want, "the fall has an impact window"
    assert impacts == want


def test_fall_stored_during_an_outage_is_alerted_once_after_restart(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    fleet = small_fleet(device_suffix)
    prepare_db(schema_url, fleet)
    cane = f"cane-{device_suffix}"
    now = int(time.time() * 1000)
    # Down for 20 minutes: the fall 10 minutes ago, the cane at rest in the last 30 s (so the
    # live detector's buffer holds newer windows than the fall's).
    fall = _fall_windows(cane, now - 600_000)
    recent = _windows(cane, rest_samples(10 * RATE_HZ, np.random.default_rng(2)), now - 30_000, 500)
    _store(schema_url, fall + recent)
    with psycopg.connect(schema_url) as conn:
        store.save_progress(conn, "whole", now - 1_200_000)
    settings = _settings(mqtt_url, schema_url, topic_prefix)
    listener = AlertListener(mqtt_url, topic_prefix)
    try:
        with running(settings) as service:
            _, alert, _ = listener.wait_for(lambda t, m: m.kind is AlertKind.FALL, 20)
            late = service.late_falls
            assert late is not None
            wait_until(lambda: late is not None and late.done, 10, "stored impacts judged")
            assert (late.stats.canes, late.stats.raised) == (1, 1)
        assert alert.device_id == cane
        assert "found late" in alert.reason
        assert fall[0].ts <= alert.event_ts <= fall[-1].ts
        # Closed by the centre; a restart that replays the same windows raises nothing again.
        with psycopg.connect(schema_url) as conn:
            store.transition(
                conn, alert.alert_id, AlertStatus.RESOLVED, "dispatcher-1", "helped up", now
            )
            conn.commit()
            conn.execute("UPDATE alerting_progress SET through_ms = %s", (now - 1_200_000,))
            conn.commit()
        while not listener.alerts.empty():
            listener.alerts.get()
        with running(settings) as service:
            late = service.late_falls
            assert late is not None
            wait_until(lambda: late is not None and late.done, 10, "stored impacts judged again")
            assert (late.stats.raised, late.stats.already_alerted) == (0, 1)
            time.sleep(0.5)
        assert listener.alerts.empty()
        # Where the last run stopped is recorded: the next start replays nothing.
        with psycopg.connect(schema_url) as conn:
            through = store.load_progress(conn, "whole")
        assert through is not None and through > now
        with running(settings) as service:
            late = service.late_falls
            if late is not None:
                wait_until(lambda: late is not None and late.done, 10, "nothing left to judge")
                assert (late.stats.canes, late.stats.raised) == (0, 0)
    finally:
        listener.close()
    with psycopg.connect(schema_url) as conn:
        falls = [a for a in store.list_alerts(conn) if a.kind is AlertKind.FALL]
    assert len(falls) == 1


MODEL = load_fall_model()


def _live(windows: list[CaneTelemetry], until_ms: int) -> list[Trigger]:
    """What the live detector raises: windows as received, the clock ticking every 0.5 s."""
    det = FallDetector(MODEL.classifier, MODEL.threshold)
    out: list[Finding] = []
    i, t = 0, windows[0].ts
    while t <= until_ms:
        while i < len(windows) and windows[i].ts + RECV_LAG_MS <= t:
            out += det.on_window(windows[i], windows[i].ts + RECV_LAG_MS)
            i += 1
        out += det.tick(t)
        t += 500
        if i < len(windows) and windows[i].ts + RECV_LAG_MS > t + 120_000:
            t = windows[i].ts + RECV_LAG_MS - 100  # nothing happens while the cane is silent
    return [f for f in out if isinstance(f, Trigger) and f.kind is AlertKind.FALL]


def _replay(
    schema_url: str, since_ms: int, until_ms: int, now: int
) -> tuple[list[Finding], list[int]]:
    """The late replay of a range, step by step: its findings and the windows of each step."""
    with psycopg.connect(schema_url) as conn:
        late = LateFalls(
            since_ms, until_ms, lambda d: True, MODEL.classifier, MODEL.threshold, list
        )
        found: list[Finding] = []
        per_step: list[int] = []
        while not late.done:
            before = late.stats.windows
            found += late.step(conn, now)  # type: ignore[arg-type]
            per_step.append(late.stats.windows - before)
    return found, per_step


def _walk_after(cane: str, after: list[CaneTelemetry], gap_ms: int) -> list[CaneTelemetry]:
    samples = walk_samples(60 * RATE_HZ, np.random.default_rng(7), RATE_HZ)
    return _windows(cane, samples, after[-1].ts + gap_ms, after[-1].seq + 1)


def test_fall_then_a_quiet_cane_walked_later_is_found(schema_url: str, device_suffix: str) -> None:
    """The cane sends nothing after the impact; 40 s later it is walked again (one span). The
    live detector decides on its clock while the cane is quiet; so must the replay."""
    prepare_db(schema_url, small_fleet(device_suffix))
    cane = f"cane-{device_suffix}"
    now = int(time.time() * 1000)
    ep = episode("fall", np.random.default_rng(FALL_SEED), RATE_HZ)
    fall = _windows(cane, ep.samples, now - 1_800_000, 100)
    peaks = [max(float(np.linalg.norm(s)) for s in w.accel_g) for w in fall]
    fall = fall[: max(i for i, p in enumerate(peaks) if p >= IMPACT_G) + 2]
    later = _walk_after(cane, fall, 40_000)
    assert _live(fall + later, now), "precondition: the live detector raises this fall"
    _store(schema_url, fall + later)
    found, per_step = _replay(schema_url, now - 2_000_000, now - 60_000, now)
    assert [f.kind for f in found if isinstance(f, Trigger)] == [AlertKind.FALL]
    assert max(per_step) <= STEP_WINDOWS


def test_long_lie_picked_up_later_is_found(schema_url: str, device_suffix: str) -> None:
    """A dropped cane lies flat and still for 70 s (a long lie after 60 s), then is picked up
    and walked (one span)."""
    prepare_db(schema_url, small_fleet(device_suffix))
    cane = f"cane-{device_suffix}"
    now = int(time.time() * 1000)
    rng = np.random.default_rng(11)
    parts, _ = _drop_cane(rng, RATE_HZ)
    pre, lead, tip, clatter, lie = parts[:5]
    lying = rest_samples(70 * RATE_HZ, rng, lie[-1] / np.linalg.norm(lie[-1]))
    samples = np.concatenate([pre, lead, tip, clatter, lying])
    samples = samples[: len(samples) - len(samples) % (2 * RATE_HZ)]
    down = _windows(cane, samples, now - 2_400_000, 100)
    later = _walk_after(cane, down, 2_000)
    live = _live(down + later, now)
    assert [f.severity for f in live] == [Severity.HIGH], "precondition: live raises a long lie"
    _store(schema_url, down + later)
    found, _ = _replay(schema_url, now - 2_600_000, now - 60_000, now)
    assert [f.severity for f in found if isinstance(f, Trigger)] == [Severity.HIGH]


def test_a_long_walk_is_judged_a_page_per_step(schema_url: str, device_suffix: str) -> None:
    """Walking canes pass the impact level at nearly every step: ten minutes of walking is one
    span, judged STEP_WINDOWS windows at a time, and raises nothing."""
    prepare_db(schema_url, small_fleet(device_suffix))
    cane = f"cane-{device_suffix}"
    now = int(time.time() * 1000)
    walk = _windows(
        cane, walk_samples(600 * RATE_HZ, np.random.default_rng(5), RATE_HZ), now - 900_000, 0
    )
    _store(schema_url, walk)
    found, per_step = _replay(schema_url, now - 1_000_000, now - 60_000, now)
    assert not [f for f in found if isinstance(f, Trigger)]
    assert sum(per_step) >= len(walk) - 5  # every window of the walk was judged
    assert max(per_step) <= STEP_WINDOWS and len([n for n in per_step if n]) >= 2


def test_an_outage_longer_than_the_session_expiry_is_judged(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    """Down for two hours (the broker session expires after one): the fall 90 minutes ago."""
    prepare_db(schema_url, small_fleet(device_suffix))
    cane = f"cane-{device_suffix}"
    now = int(time.time() * 1000)
    _store(schema_url, _fall_windows(cane, now - 5_400_000))
    with psycopg.connect(schema_url) as conn:
        store.save_progress(conn, "whole", now - 7_200_000)
    listener = AlertListener(mqtt_url, topic_prefix)
    try:
        with running(_settings(mqtt_url, schema_url, topic_prefix)):
            _, alert, _ = listener.wait_for(lambda t, m: m.kind is AlertKind.FALL, 30)
    finally:
        listener.close()
    assert alert.device_id == cane and "found late" in alert.reason


def test_database_down_while_judging_waits_instead_of_spinning(
    mqtt_url: str, schema_url: str, topic_prefix: str, device_suffix: str
) -> None:
    prepare_db(schema_url, small_fleet(device_suffix))
    proxy = CuttableProxy(("127.0.0.1", 5432))
    proxied = schema_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert proxied != schema_url
    calls = [0]
    drain = AlertingService._drain

    def counting(self: AlertingService, *args: object) -> None:
        calls[0] += 1
        drain(self, *args)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AlertingService, "_drain", counting)
        try:
            with running(_settings(mqtt_url, proxied, topic_prefix)) as service:
                proxy.cut()
                wait_until(
                    lambda: service.writer is not None and not service.writer.online,
                    15,
                    "offline",
                )
                now = int(time.time() * 1000)
                service.late_falls = LateFalls(
                    now - 600_000,
                    now - 60_000,
                    lambda d: True,
                    MODEL.classifier,
                    MODEL.threshold,
                    list,
                )
                before, started = calls[0], time.monotonic()
                time.sleep(2.0)
                rate = (calls[0] - before) / (time.monotonic() - started)
        finally:
            proxy.close()
    # Waiting on the inbox between cycles (tick_s 0.2 s here), not a busy loop.
    assert rate < 50, f"{rate:.0f} drain cycles/s with the database down"
