"""Clock-skew table: every detector raises once, after its normal delay, whatever the device clock.

Each scenario is a device's traffic on the platform clock; the device stamps it with a clock
that is right, a day behind, 20 s behind, 30 s or 4 minutes ahead, or reset to 0 (a battery
change) part-way through. The pure engine gets each message at its receive time (a varying
network delay) and a tick every `tick_ms`; the alert must come out exactly once, after the
same delay and with the same severity as with a correct clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest

from alerting.detectors.fall import FallClassifier
from alerting.engine import Engine
from alerting.fall_model import load_fall_model
from alerting.model import Action, Close, Raise
from firmware_sim.cane import cane_windows, episode, rest_samples
from gateway import (
    AlertKind,
    AlertStatus,
    BandTelemetry,
    CaneTelemetry,
    DeviceType,
    Event,
    Message,
    SmokeTelemetry,
    Status,
)
from tests.alerting.helpers import HOME, small_fleet

S = "sk"
# 2026-11-29 06:00 in the district (UTC+8); NIGHT is 03:00 the same night.
DAY = 1_764_367_200_000
NIGHT = DAY - 3 * 3_600_000
MIN = 60_000
Build = Callable[[int, int], Message]

SKEWS: dict[str, Callable[[int, int], int]] = {
    "correct": lambda t, reset: t,
    "minus_1_day": lambda t, reset: t - 86_400_000,
    "minus_20_s": lambda t, reset: t - 20_000,
    "plus_30_s": lambda t, reset: t + 30_000,
    "plus_4_min": lambda t, reset: t + 240_000,
    "reset_to_0": lambda t, reset: t if t < reset else t - reset,
}


@dataclass(frozen=True)
class Scenario:
    device_id: str
    kind: AlertKind
    start_ms: int
    sends: list[tuple[int, Build]]  # platform send time, build(ts, seq)
    incident_ms: int
    end_ms: int
    reset_ms: int
    tick_ms: int = 1000
    before: int = 0  # alerts of this kind expected before the incident
    merge: bool = True  # a repeated trigger refreshes the active alert (anomaly: each counts)


def _delay_ms(seq: int) -> int:
    return 60 + (seq * 37) % 250


@cache
def _model() -> tuple[FallClassifier, float]:
    model = load_fall_model()
    return model.classifier, model.threshold


def run(scn: Scenario, skew: str) -> list[tuple[int, Action]]:
    """Feed the scenario to a fresh engine; returns (platform ms, action) in order."""
    classifier, threshold = _model()
    engine = Engine(small_fleet(S), classifier, scn.start_ms, fall_threshold=threshold)
    clock = SKEWS[skew]
    arrivals = sorted(
        (t + _delay_ms(seq), seq, build(clock(t, scn.reset_ms), seq))
        for seq, (t, build) in enumerate(scn.sends, start=1)
    )
    out: list[tuple[int, Action]] = []
    now, i = scn.start_ms, 0
    while now <= scn.end_ms:
        while i < len(arrivals) and arrivals[i][0] <= now:
            received, _, message = arrivals[i]
            out += [(received, a) for a in engine.on_message(message, received)]
            i += 1
        out += [(now, a) for a in engine.tick(now)]
        now += scn.tick_ms
    return out


def _band(
    lat: float = HOME[0],
    lon: float = HOME[1],
    steps: int | None = None,
    hr: int | None = None,
    battery: float | None = None,
) -> Build:
    def build(ts: int, seq: int) -> Message:
        return BandTelemetry(
            device_id=f"band-{S}",
            type=DeviceType.BAND,
            seq=seq,
            ts=ts,
            lat=lat,
            lon=lon,
            hacc_m=8.0,
            steps=steps,
            hr_bpm=hr,
            worn=True,
            battery_pct=battery,
        )

    return build


def _event(device_id: str, dtype: DeviceType, name: str) -> Build:
    return lambda ts, seq: Event(device_id=device_id, type=dtype, seq=seq, ts=ts, event=name)


def _smoke(db_m: float) -> Build:
    return lambda ts, seq: SmokeTelemetry(
        device_id=f"smoke-{S}", type=DeviceType.SMOKE, seq=seq, ts=ts, smoke_db_m=db_m, temp_c=21
    )


def _cane(samples: np.ndarray) -> Build:
    accel = tuple(tuple(float(v) for v in s) for s in samples)
    return lambda ts, seq: CaneTelemetry(
        device_id=f"cane-{S}",
        type=DeviceType.CANE,
        seq=seq,
        ts=ts,
        rate_hz=50,
        accel_g=accel,  # type: ignore[arg-type]
    )


def _status(online: bool) -> Build:
    def build(ts: int, seq: int) -> Message:
        if not online:
            return Status(device_id=f"band-{S}", type=DeviceType.BAND, online=False)
        return Status(
            device_id=f"band-{S}", type=DeviceType.BAND, online=True, ts=ts, heartbeat_s=60
        )

    return build


def sos() -> Scenario:
    btn = f"btn-{S}"
    t0 = DAY
    sends = [(t0 + k * 10_000, _event(btn, DeviceType.BUTTON, "cancel")) for k in range(1, 6)]
    sends += [
        (t0 + 120_000, _event(btn, DeviceType.BUTTON, "press")),
        (t0 + 128_000, _event(btn, DeviceType.BUTTON, "cancel")),
    ]
    return Scenario(btn, AlertKind.SOS, t0, sends, t0 + 120_000, t0 + 140_000, t0 + 60_000)


def smoke() -> Scenario:
    t0 = DAY
    sends = [(t0 + k * MIN, _smoke(0.0)) for k in range(10)]
    fire = t0 + 10 * MIN
    # A t^2 design fire (NFPA 72): 0.2 dB/m after two minutes.
    sends += [(fire + k * 5000, _smoke(0.2 * (k * 5 / 120) ** 2)) for k in range(1, 30)]
    return Scenario(f"smoke-{S}", AlertKind.SMOKE, t0, sends, fire, fire + 3 * MIN, t0 + 5 * MIN)


def _fall_scenario(seed: int) -> Scenario:
    rng = np.random.default_rng(seed)
    ep = episode("fall", rng, 50)
    windows = cane_windows(ep.samples, 50)
    t0 = DAY
    sends = [(t0 + k * MIN, _cane(rest_samples(100, rng))) for k in range(10)]
    start = t0 + 10 * MIN
    impact_window = ep.onset_index // 100 + 1
    # The cane streams until just after the impact, then lies still and stops sending.
    for i, w in enumerate(windows[: impact_window + 2]):
        sends.append((start + (i + 1) * 2000, _cane(w)))
    onset = start + int((ep.onset_index + 1) * 20)
    return Scenario(f"cane-{S}", AlertKind.FALL, t0, sends, onset, onset + MIN, t0 + 5 * MIN, 500)


@cache
def fall() -> Scenario:
    """The first test seed whose truncated fall the shipped model flags with a correct clock."""
    for seed in range(900_000, 900_040):
        scn = _fall_scenario(seed)
        if _raises(run(scn, "correct"), scn):
            return scn
    raise AssertionError("no fall episode is detected even with a correct clock")


def wandering() -> Scenario:
    t0 = NIGHT - 10 * MIN
    sends = [(t0 + k * 30_000, _band()) for k in range(20)]
    away = (HOME[0] + 0.0072, HOME[1])  # ~800 m north: clearly outside a 300 m zone
    sends += [(NIGHT + k * 30_000, _band(*away)) for k in range(6)]
    return Scenario(
        f"band-{S}", AlertKind.WANDERING, t0, sends, NIGHT, NIGHT + 4 * MIN, t0 + 5 * MIN
    )


def inactivity() -> Scenario:
    t0 = DAY
    walking_ms = 5 * 3_600_000
    sends = [(t0 + k * 30_000, _band(steps=40)) for k in range(walking_ms // 30_000)]
    still = t0 + walking_ms
    sends += [(still + k * 300_000, _band(steps=0)) for k in range(1, 60)]
    return Scenario(
        f"band-{S}",
        AlertKind.INACTIVITY,
        t0,
        sends,
        still,
        still + 5 * 3_600_000,
        t0 + 3_600_000,
        tick_ms=10_000,
    )


def anomaly() -> Scenario:
    t0 = DAY
    sends = [(t0 + k * MIN, _band(hr=170 if k == 1 else 70)) for k in range(35)]
    incident = t0 + 35 * MIN
    sends += [(incident, _band(hr=175))]
    return Scenario(
        f"band-{S}",
        AlertKind.ANOMALY,
        t0,
        sends,
        incident,
        incident + MIN,
        t0 + 5 * MIN,
        before=1,
        merge=False,
    )


def offline_silence() -> Scenario:
    t0 = DAY
    sends = [(t0 + k * MIN, _status(True)) for k in range(10)]
    last = t0 + 9 * MIN
    return Scenario(
        f"band-{S}", AlertKind.DEVICE_OFFLINE, t0, sends, last, last + 5 * MIN, t0 + 5 * MIN
    )


def offline_will() -> Scenario:
    t0 = DAY
    sends = [(t0 + k * MIN, _status(True)) for k in range(10)]
    will = t0 + 9 * MIN + 30_000
    sends.append((will, _status(False)))
    return Scenario(
        f"band-{S}", AlertKind.DEVICE_OFFLINE, t0, sends, will, will + 4 * MIN, t0 + 5 * MIN
    )


def low_battery() -> Scenario:
    t0 = DAY
    sends = [(t0 + k * 30_000, _band(battery=50.0 - k)) for k in range(20)]
    low = t0 + 20 * 30_000
    sends.append((low, _band(battery=12.0)))
    return Scenario(f"band-{S}", AlertKind.LOW_BATTERY, t0, sends, low, low + MIN, t0 + 5 * MIN)


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "sos": sos,
    "smoke": smoke,
    "fall": fall,
    "wandering": wandering,
    "inactivity": inactivity,
    "anomaly": anomaly,
    "offline_silence": offline_silence,
    "offline_will": offline_will,
    "low_battery": low_battery,
}


def _raises(actions: list[tuple[int, Action]], scn: Scenario) -> list[tuple[int, Raise]]:
    """The alerts raised: a repeated trigger before any close refreshes the same alert."""
    out: list[tuple[int, Raise]] = []
    active = False
    for t, a in actions:
        if isinstance(a, Close) and a.kind is scn.kind:
            active = False
        elif (
            isinstance(a, Raise)
            and a.trigger.kind is scn.kind
            and a.trigger.device_id == scn.device_id
        ):
            if not active:
                out.append((t, a))
            active = scn.merge
    return out


@cache
def _baseline(name: str) -> tuple[int, str]:
    scn = SCENARIOS[name]()
    after = [(t, a) for t, a in _raises(run(scn, "correct"), scn) if t >= scn.incident_ms]
    assert len(after) == 1, f"{name}: the correct clock itself gives {len(after)} alerts"
    t, a = after[0]
    return t - scn.incident_ms, a.trigger.severity.value


@pytest.mark.parametrize("skew", list(SKEWS))
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_detector_raises_once_in_its_normal_delay_whatever_the_clock(
    name: str, skew: str
) -> None:
    scn = SCENARIOS[name]()
    delay_ms, severity = _baseline(name)
    raised = _raises(run(scn, skew), scn)
    before = [t for t, _ in raised if t < scn.incident_ms]
    after = [(t, a) for t, a in raised if t >= scn.incident_ms]
    assert len(before) == scn.before, f"alerts before the incident: {before}"
    assert len(after) == 1, f"{len(after)} alerts after the incident"
    t, a = after[0]
    assert abs((t - scn.incident_ms) - delay_ms) <= scn.tick_ms + 500
    assert a.trigger.severity.value == severity


@pytest.mark.parametrize("skew", list(SKEWS))
def test_the_wearer_can_cancel_a_press_whatever_the_clock(skew: str) -> None:
    scn = sos()
    closes = [a for _, a in run(scn, skew) if isinstance(a, Close) and a.kind is AlertKind.SOS]
    assert [c.status for c in closes] == [AlertStatus.CANCELLED]


def test_fall_delay_is_within_the_30_s_target() -> None:
    delay_ms, _ = _baseline("fall")
    assert delay_ms <= 30_000
