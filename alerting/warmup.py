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


def warm_up(engine: Engine, samples: Sequence[BandSample], movement_since_ms: int) -> WarmupStats:
    """Feed stored band readings to the learning state of inactivity and anomaly only.

    Args:
        engine: a freshly built engine (before active alerts are restored).
        samples: band readings, any order.
        movement_since_ms: readings received from here on count as movement (platform ms);
            older ones only teach the anomaly model.
    """
    offsets = clock_offsets_ms(samples)
    movements = learned = 0
    ordered = sorted(samples, key=lambda s: s.device_ts_ms + offsets[s.device_id])
    for s in ordered:
        device = engine.device(s.device_id)
        if device is None or device.type is not DeviceType.BAND:
            continue
        ts = s.device_ts_ms + offsets[s.device_id]
        if s.steps is not None and s.received_ms >= movement_since_ms:
            # Findings are dropped: restored alerts and catch-up decide what is raised.
            engine.inactivity.on_movement(device.elder_id, device.id, ts, s.steps)
            movements += 1
        if s.hr_bpm is not None and s.worn is not False:
            engine.anomaly.learn(device.elder_id, ts, s.hr_bpm, s.steps or 0)
            learned += 1
    return WarmupStats(movements, learned)


def load_and_warm_up(
    conn: psycopg.Connection[Any],
    engine: Engine,
    now_ms: int,
    until_ms: int,
    *,
    anomaly_h: float,
    anomaly_samples: int,
) -> WarmupStats:
    """Read the band history received before `until_ms` and warm the engine up with it.

    Args:
        conn: the database.
        engine: the engine to warm up.
        now_ms: the platform clock.
        until_ms: where catch-up starts (platform ms): later readings are replayed, not learned.
        anomaly_h: how far back heart-rate samples are read.
        anomaly_samples: at most this many heart-rate samples per band.
    """
    movement_since = now_ms - movement_window_ms(engine)
    since = min(movement_since, now_ms - int(anomaly_h * HOUR_MS))
    rows = readback.band_samples(
        conn, since, until_ms, all_since_ms=movement_since, per_device=anomaly_samples
    )
    stats = warm_up(engine, [BandSample(*row) for row in rows], movement_since)
    logger.info(
        "warmed up on %d stored band readings (%d movements, %d heart-rate samples)",
        len(rows),
        stats.movements,
        stats.anomaly_samples,
    )
    return stats
