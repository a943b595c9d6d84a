"""The pure engine (messages -> actions) and the lifecycle, with an injected clock."""

from __future__ import annotations

import numpy as np
import pytest

from alerting.engine import Engine
from alerting.lifecycle import TransitionError, check_transition
from alerting.model import Close, Raise
from gateway import (
    AlertKind,
    AlertStatus,
    BandTelemetry,
    DeviceType,
    Event,
    Status,
)
from tests.alerting.helpers import HOME, small_fleet

T0 = 1_764_316_800_000


class _Never:
    def predict_proba(self, x: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
        return np.zeros((len(x), 2))


@pytest.fixture
def engine() -> Engine:
    return Engine(small_fleet("x1"), _Never(), T0, will_grace_s=0)


def test_button_press_is_placed_at_home_and_band_sos_where_the_band_is(engine: Engine) -> None:
    (r,) = engine.on_message(
        Event(device_id="btn-x1", type=DeviceType.BUTTON, seq=1, ts=T0, event="press"), T0
    )
    assert isinstance(r, Raise) and (r.lat, r.lon) == HOME and r.elder_id == "el-x1"
    engine.on_message(
        BandTelemetry(
            device_id="band-x1",
            type=DeviceType.BAND,
            seq=1,
            ts=T0,
            lat=39.95,
            lon=116.39,
            hacc_m=10.0,
        ),
        T0,
    )
    (r,) = engine.on_message(
        Event(device_id="band-x1", type=DeviceType.BAND, seq=2, ts=T0 + 1, event="sos"), T0
    )
    assert isinstance(r, Raise) and (r.lat, r.lon) == (39.95, 116.39)


def test_duplicates_and_unknown_devices_are_dropped(engine: Engine) -> None:
    press = Event(device_id="btn-x1", type=DeviceType.BUTTON, seq=1, ts=T0, event="press")
    assert engine.on_message(press, T0)
    assert engine.on_message(press, T0 + 10) == []
    stranger = Event(device_id="btn-zz", type=DeviceType.BUTTON, seq=1, ts=T0, event="press")
    assert engine.on_message(stranger, T0) == []
    assert engine.stats.duplicates == 1 and engine.stats.unknown_devices == 1


def test_offline_closes_only_when_every_device_of_the_elder_is_back(engine: Engine) -> None:
    for dev, dtype in (("band-x1", DeviceType.BAND), ("cane-x1", DeviceType.CANE)):
        engine.on_message(Status(device_id=dev, type=dtype, online=False), T0)
    back = Status(device_id="band-x1", type=DeviceType.BAND, online=True, ts=T0 + 5)
    assert engine.on_message(back, T0 + 5) == []
    back = Status(device_id="cane-x1", type=DeviceType.CANE, online=True, ts=T0 + 6)
    (c,) = engine.on_message(back, T0 + 6)
    assert isinstance(c, Close) and c.kind is AlertKind.DEVICE_OFFLINE and c.device_id is None


def test_silence_counts_on_the_injected_clock(engine: Engine) -> None:
    assert engine.tick(T0 + 749_000) == []
    raised = engine.tick(T0 + 750_000)
    assert {a.trigger.device_id for a in raised if isinstance(a, Raise)} == {
        "btn-x1",
        "band-x1",
        "cane-x1",
        "smoke-x1",
    }


@pytest.mark.parametrize(
    ("current", "target", "ok"),
    [
        (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED, True),
        (AlertStatus.ESCALATED, AlertStatus.ACKNOWLEDGED, True),
        (AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED, True),
        (AlertStatus.RESOLVED, AlertStatus.ACKNOWLEDGED, False),
        (AlertStatus.CANCELLED, AlertStatus.RESOLVED, False),
        (AlertStatus.ACKNOWLEDGED, AlertStatus.ACKNOWLEDGED, False),
    ],
    ids=["ack", "ack-escalated", "resolve", "reopen", "cancelled", "ack-twice"],
)
def test_lifecycle_transitions(current: AlertStatus, target: AlertStatus, ok: bool) -> None:
    if ok:
        check_transition(current, target)
    else:
        with pytest.raises(TransitionError):
            check_transition(current, target)
