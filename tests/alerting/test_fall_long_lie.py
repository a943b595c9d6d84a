"""The long lie: a cane that hits the floor and is not picked up is a possible fall."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from alerting.detectors import FallDetector
from alerting.detectors.fall import LONG_LIE_S
from alerting.model import Finding, Trigger
from firmware_sim.cane import walk_samples
from gateway import AlertKind, CaneTelemetry, DeviceType, Severity

RATE = 50
T0 = 1_764_316_800_000


class ConstantModel:
    """A classifier whose answer is fixed, so that only the long-lie logic is under test."""

    def __init__(self, p: float) -> None:
        self.p = p

    def predict_proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.tile([1 - self.p, self.p], (len(x), 1))


def _flat(n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """A cane lying on the floor: gravity across the shaft, sensor noise only."""
    return np.tile([0.0, 0.99, 0.1], (n, 1)) + rng.normal(0, 0.006, (n, 3))


def _drop(rng: np.random.Generator) -> NDArray[np.float64]:
    """Walking, a short tip-over and a clatter of 4 g on the floor, 2 s of bouncing."""
    walk = walk_samples(4 * RATE, rng, RATE)
    tip = np.linspace([0.0, 0.1, 0.6], [0.0, 0.4, 0.2], 5)
    clatter = np.array([[0.3, 4.0, 0.5], [0.1, 1.8, 0.2], [0.0, 1.3, 0.1]])
    bounce = _flat(2 * RATE - 8, rng) + rng.normal(0, 0.1, (2 * RATE - 8, 3))
    return np.concatenate([walk, tip, clatter, bounce])


class Cane:
    """Sends windows as the contract says: 2 s while moving, a short one every 60 s at rest."""

    def __init__(self, det: FallDetector, skew_ms: int = 0) -> None:
        self.det, self.skew_ms, self.seq = det, skew_ms, 0
        self.found: list[Finding] = []

    def send(self, samples: NDArray[np.float64], received_ms: int) -> None:
        msg = CaneTelemetry(
            device_id="cane-1",
            type=DeviceType.CANE,
            seq=self.seq,
            ts=received_ms + self.skew_ms,
            rate_hz=RATE,
            accel_g=tuple((float(x), float(y), float(z)) for x, y, z in samples),
        )
        self.seq += 1
        self.found += self.det.on_window(msg, received_ms)

    def stream(self, samples: NDArray[np.float64], t0_ms: int) -> int:
        """Consecutive 2 s windows from `t0_ms`; returns when the last one was received."""
        end = t0_ms
        for i in range(0, len(samples), 2 * RATE):
            end = t0_ms + (i + len(samples[i : i + 2 * RATE])) * 1000 // RATE
            self.send(samples[i : i + 2 * RATE], end)
        return end

    def tick(self, now_ms: int) -> list[Trigger]:
        self.found += self.det.tick(now_ms)
        return [f for f in self.found if isinstance(f, Trigger)]


def _dropped(cane: Cane, rng: np.random.Generator) -> int:
    """Drop the cane at about T0 + 4 s; returns the impact's receive time."""
    cane.stream(np.concatenate([_drop(rng), _flat(4 * RATE, rng)]), T0)
    return T0 + 4 * 1000 + 8 * 1000 // RATE


@pytest.mark.parametrize(
    "skew_ms", [0, -3 * 3_600_000, 7 * 60_000], ids=["ok", "3h-slow", "7min-fast"]
)
def test_cane_left_on_the_floor_is_a_possible_fall_after_60_s(skew_ms: int) -> None:
    rng = np.random.default_rng(1)
    cane = Cane(FallDetector(ConstantModel(0.0)), skew_ms)
    impact_ms = _dropped(cane, rng)
    # At rest the cane sends one short window a minute; it still lies flat.
    cane.send(_flat(10, rng), impact_ms + 30_000)
    assert cane.tick(impact_ms + int(LONG_LIE_S * 1000) - 2_000) == []
    (alert,) = cane.tick(impact_ms + int(LONG_LIE_S * 1000) + 2_000)
    assert alert.kind is AlertKind.FALL and alert.severity is Severity.HIGH
    assert "long lie" in alert.reason
    assert cane.tick(impact_ms + 10 * 60_000) == [alert]  # raised once


def test_cane_picked_up_within_seconds_is_not_a_fall() -> None:
    rng = np.random.default_rng(2)
    cane = Cane(FallDetector(ConstantModel(0.0)))
    impact_ms = _dropped(cane, rng)
    pick = np.linspace([0.0, 0.99, 0.1], [0.04, 0.02, 1.0], RATE) + rng.normal(0, 0.2, (RATE, 3))
    walk = walk_samples(10 * RATE, rng, RATE)
    cane.stream(np.concatenate([pick, walk]), impact_ms + 6_000)
    assert cane.tick(impact_ms + 5 * 60_000) == []


def test_cane_still_upright_after_a_knock_is_not_a_long_lie() -> None:
    rng = np.random.default_rng(3)
    cane = Cane(FallDetector(ConstantModel(0.0)))
    walk = walk_samples(4 * RATE, rng, RATE)
    knock = np.array([[0.2, 0.1, 3.0], [0.1, 0.0, 1.5]])
    leaning = np.tile([0.1, 0.05, 0.99], (6 * RATE, 1)) + rng.normal(0, 0.006, (6 * RATE, 3))
    cane.stream(np.concatenate([walk, knock, leaning]), T0)
    assert cane.tick(T0 + 5 * 60_000) == []


def test_a_fall_the_model_raised_is_not_raised_again_as_a_long_lie() -> None:
    rng = np.random.default_rng(4)
    cane = Cane(FallDetector(ConstantModel(1.0)))
    impact_ms = _dropped(cane, rng)
    cane.stream(_flat(6 * RATE, rng), impact_ms + 5_000)
    found = cane.tick(impact_ms + 5 * 60_000)
    assert [t.severity for t in found] == [Severity.CRITICAL]


def test_the_engine_raises_a_long_lie_for_the_elder_on_receive_time() -> None:
    from alerting.engine import Engine
    from alerting.model import Raise
    from tests.alerting.helpers import small_fleet

    rng = np.random.default_rng(6)
    engine = Engine(small_fleet("ll"), ConstantModel(0.0), T0)
    samples = np.concatenate([_drop(rng), _flat(4 * RATE, rng)])
    skew_ms = -2 * 3_600_000  # the cane's clock is two hours slow
    received = T0
    for seq, i in enumerate(range(0, len(samples), 2 * RATE)):
        received = T0 + (i + 2 * RATE) * 1000 // RATE
        msg = CaneTelemetry(
            device_id="cane-ll",
            type=DeviceType.CANE,
            seq=seq,
            ts=received + skew_ms,
            rate_hz=RATE,
            accel_g=tuple((float(x), float(y), float(z)) for x, y, z in samples[i : i + 2 * RATE]),
        )
        assert not [a for a in engine.on_message(msg, received) if isinstance(a, Raise)]
    impact_ms = T0 + 4_000 + 8 * 1000 // RATE

    def falls(now_ms: int) -> list[Raise]:
        return [
            a
            for a in engine.tick(now_ms)
            if isinstance(a, Raise) and a.trigger.kind is AlertKind.FALL
        ]

    assert falls(impact_ms + int(LONG_LIE_S * 1000) - 2_000) == []
    (alert,) = falls(impact_ms + int(LONG_LIE_S * 1000) + 2_000)
    assert alert.elder_id == "el-ll" and alert.trigger.severity is Severity.HIGH
    assert "long lie" in alert.trigger.reason
