"""Rebuild the detectors' learned state from stored history at start (no alerts emitted).

Inactivity compares the last 3-4 h of movement with the elder's baseline and anomaly fits a
per-elder model on hundreds of heart-rate samples: kept in memory only, both would be blind
for hours after every restart. The stored band readings rebuild them. Canes are left out:
their windows are bulky, and a cane's movement needs its raw samples; the live stream and the
last minute of catch-up feed it again.

Time base: a reading's place in the movement window is its device time corrected by that
band's clock offset, estimated as the smallest (receive time - device time) among its stored
readings (the reading that travelled fastest; a buffer replayed late does not move it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from alerting.detectors.inactivity import FALLBACK_H, HOUR_MS
from alerting.engine import Engine
from gateway.contract import DeviceType
from ingest import readback

logger = logging.getLogger(__name__)

# The movement window is 4 h (the no-baseline rule); bands report at least every 300 s
# (contract §1 "band"), so 10 more minutes make sure the window starts with a reading.
_MOVEMENT_MARGIN_MS = 10 * 60 * 1000
# The contract rejects a `ts` more than 5 minutes ahead of the platform clock.
_FUTURE_TS_MS = 5 * 60 * 1000


@dataclass(frozen=True, slots=True)
class BandSample:
    """One stored band reading, the columns learning needs."""

    device_id: str
    received_ms: int
    device_ts_ms: int
    steps: float | None
    hr_bpm: float | None
    worn: bool | None


@dataclass(frozen=True, slots=True)
class WarmupStats:
    """What the warm-up fed."""

    movements: int
    anomaly_samples: int


def movement_window_ms(engine: Engine) -> int:
    """How far back movement matters to the inactivity detector, plus a reporting period."""
    return max(engine.inactivity.window_h, FALLBACK_H) * HOUR_MS + _MOVEMENT_MARGIN_MS


def clock_offsets_ms(samples: Iterable[BandSample]) -> dict[str, int]:
    """Per device, the smallest receive - device time: add it to a device time to correct it."""
    out: dict[str, int] = {}
    for s in samples:
        lag = s.received_ms - s.device_ts_ms
        if s.device_id not in out or lag < out[s.device_id]:
            out[s.device_id] = lag
    return out


def warm_movement(engine: Engine, samples: Sequence[BandSample], since_ms: int) -> int:
    """Feed the steps of band readings received from `since_ms` on to inactivity only.

    Run before catch-up: the movement window must be filled oldest first. Findings are
    dropped: restored alerts and catch-up decide what is raised. Returns the readings fed.
    """
    offsets = clock_offsets_ms(samples)
    fed = 0
    for s in sorted(samples, key=lambda s: s.device_ts_ms + offsets[s.device_id]):
        device = engine.device(s.device_id)
        if device is None or device.type is not DeviceType.BAND:
            continue
        if s.steps is not None and s.received_ms >= since_ms:
            ts = s.device_ts_ms + offsets[s.device_id]
            engine.inactivity.on_movement(device.elder_id, device.id, ts, s.steps)
            fed += 1
    return fed


def learn_heart_rates(engine: Engine, samples: Sequence[BandSample]) -> int:
    """Teach the anomaly model the worn heart-rate readings; returns how many were given.

    Any order, before or after catch-up: each band's readings are put in time order and each
    learnt with the interval since that band's previous stored reading (what its steps
    cover), so the live readings already judged do not hide the history.
    """
    offsets = clock_offsets_ms(samples)
    learned = 0
    previous: dict[str, int] = {}
    for s in sorted(samples, key=lambda s: (s.device_id, s.device_ts_ms)):
        device = engine.device(s.device_id)
        if device is None or device.type is not DeviceType.BAND:
            continue
        if s.hr_bpm is not None and s.worn is not False:
            ts = s.device_ts_ms + offsets[s.device_id]
            before = previous.get(s.device_id)
            previous[s.device_id] = ts
            interval_ms = ts - before if before is not None else 0
            engine.anomaly.learn(device.elder_id, ts, s.hr_bpm, s.steps or 0, interval_ms)
            learned += 1
    return learned


def warm_up(engine: Engine, samples: Sequence[BandSample], movement_since_ms: int) -> WarmupStats:
    """Feed stored band readings to the learning state of inactivity and anomaly only.

    Args:
        engine: a freshly built engine (before active alerts are restored).
        samples: band readings, any order.
        movement_since_ms: readings received from here on count as movement (platform ms);
            older ones only teach the anomaly model.
    """
    movements = warm_movement(engine, samples, movement_since_ms)
    return WarmupStats(movements, learn_heart_rates(engine, samples))


@dataclass(frozen=True, slots=True)
class BandHistory:
    """Stored band readings for the warm-up."""

    movement: list[BandSample]  # received in [movement_since_ms, catch-up start)
    movement_since_ms: int
    heart_rates: list[BandSample]  # the newest worn heart-rate readings per band


def load_band_history(
    conn: psycopg.Connection[Any],
    engine: Engine,
    now_ms: int,
    until_ms: int,
    *,
    anomaly_h: float,
    anomaly_samples: int,
) -> BandHistory:
    """Read the band history received before `until_ms` (where catch-up starts).

    Args:
        conn: the database.
        engine: the engine to warm up (its movement window decides how far back steps count).
        now_ms: the platform clock.
        until_ms: where catch-up starts (platform ms): later readings are replayed, not learned.
        anomaly_h: how far back heart-rate readings are read.
        anomaly_samples: at most this many heart-rate readings per band.
    """
    movement_since = now_ms - movement_window_ms(engine)
    movement = readback.band_movement(conn, movement_since, until_ms)
    bands = [d for d, t in engine.device_types().items() if t is DeviceType.BAND]
    hr_since = now_ms - int(anomaly_h * HOUR_MS)
    # Device time bounds this read (the primary key's order): 5 more minutes keep a clock
    # running fast up to the contract's limit; readings received after catch-up starts are
    # dropped here because catch-up replays them.
    heart = readback.band_heart_rates(
        conn, bands, hr_since, until_ms + _FUTURE_TS_MS, anomaly_samples
    )
    return BandHistory(
        [BandSample(*r) for r in movement],
        movement_since,
        [BandSample(*r) for r in heart if r[1] < until_ms],
    )
