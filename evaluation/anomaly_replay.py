"""Score the anomaly model on days of simulated wristband traffic (an engineering tool).

`eldercare eval` runs hours at most, while an elder's heart-rate baseline takes days to fill,
so the anomaly model is scored here apart: the simulator's own engine (`firmware_sim.engine`,
no broker) drives the bands of a district for `--days` with arrhythmia episodes at
`--per-day` per elder-day (atrial fibrillation with a fast ventricular rate, heart block;
`firmware_sim.conditions`), and every reading a worn band sends goes through
`alerting.detectors.anomaly.AnomalyDetector` in time order. An episode counts as found when
an anomaly trigger for its elder falls between its onset and 10 minutes after its end, and
as detectable when the band sent at least one heart rate during it (an episode while the band
charges is invisible to any model). A trigger outside every episode is a false alarm.

Thresholds were tuned with `--seed 5001` and are reported with the scoring seeds 7001-7003.

    python -m evaluation.anomaly_replay [--elders 1000] [--days 4] [--per-day 0.05]
        [--seeds 7001,7002,7003]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

from alerting.detectors.anomaly import AnomalyDetector
from evaluation.evaluate import SCORING_SEEDS
from firmware_sim.district import generate_fleet
from firmware_sim.engine import Engine
from gateway.contract import DeviceType

# An alert up to this long after an episode ends still belongs to it.
AFTER_END_MS = 10 * 60 * 1000
_START_MS = 1_796_000_000_000
_STEP_MS = 600_000

Reading = tuple[str, str, int, int | None, int, bool]  # elder, band, ts, hr, steps, worn


@dataclass(frozen=True, slots=True)
class Episode:
    """One arrhythmia episode as the ground truth gives it (device clock, ms)."""

    elder_id: str
    start_ms: int
    end_ms: int
    detail: str


@dataclass(frozen=True, slots=True)
class ReplayScore:
    """What one replay measured."""

    bands: int
    days: float
    detectable: int
    found: int
    false_alarms: int
    latency_min: list[float]
    cpu_us: float
    missed: list[str]

    @property
    def false_per_band_day(self) -> float:
        """False alarms per band per day."""
        return self.false_alarms / (self.bands * self.days)


def simulate(
    elders: int, days: float, seed: int, per_day: float
) -> tuple[list[Reading], list[Episode], int]:
    """Band readings and arrhythmia episodes of `elders` elders over `days`; returns
    (readings in send order, episodes, bands)."""
    fleet = generate_fleet(elders, seed=seed)
    fleet = replace(fleet, devices=tuple(d for d in fleet.devices if d.type is DeviceType.BAND))
    owner = {d.id: d.elder_id for d in fleet.devices}
    engine = Engine(
        fleet, seed=seed, start_ms=_START_MS, anomaly_per_day=per_day, inactivity_per_day=0.0
    )
    end = _START_MS + int(days * 86_400_000)
    readings: list[Reading] = []
    episodes: list[Episode] = []
    t = _START_MS
    while t < end:
        t = min(t + _STEP_MS, end)
        for action in engine.advance(t):
            wire = action.wire
            if wire is None or not wire.topic.endswith("/telemetry"):
                continue
            fix = json.loads(wire.payload)
            band = wire.topic.split("/")[-2]
            readings.append(
                (
                    owner[band],
                    band,
                    fix["ts"],
                    fix.get("hr_bpm"),
                    fix.get("steps", 0),
                    fix.get("worn", True),
                )
            )
        for incident in engine.take_incidents():
            if incident.kind == "anomaly":
                hours = float(re.search(r"hours=([\d.]+)", incident.detail or "").group(1))  # type: ignore[union-attr]
                start = incident.start_ts
                episodes.append(
                    Episode(
                        incident.elder_id,
                        start,
                        start + int(hours * 3_600_000),
                        incident.detail or "",
                    )
                )
    return readings, episodes, len(fleet.devices)


def score(readings: list[Reading], episodes: list[Episode], bands: int, days: float) -> ReplayScore:
    """Judge every worn reading in time order and match the triggers to the episodes."""
    detector = AnomalyDetector()
    triggers: list[tuple[str, int]] = []
    ordered = sorted(readings, key=lambda r: r[2])
    started = time.process_time()
    judged = 0
    previous: dict[str, int] = {}
    for elder, band, ts, hr, steps, worn in ordered:
        # As the engine does: the steps cover the time since the band's previous message.
        before = previous.get(band)
        previous[band] = ts
        if hr is None or not worn:
            continue
        judged += 1
        interval_ms = ts - before if before is not None else 0
        found = detector.on_sample(elder, band, ts, hr, steps, interval_ms)
        triggers.extend((elder, f.event_ts) for f in found)
    cpu_us = (time.process_time() - started) / max(1, judged) * 1e6
    worn_at: dict[str, list[int]] = defaultdict(list)
    for elder, _band, ts, hr, _steps, worn in ordered:
        if hr is not None and worn:
            worn_at[elder].append(ts)
    detectable = [
        e for e in episodes if any(e.start_ms <= t <= e.end_ms for t in worn_at[e.elder_id])
    ]
    first: dict[Episode, int] = {}
    false_alarms = 0
    by_elder: dict[str, list[Episode]] = defaultdict(list)
    for e in episodes:
        by_elder[e.elder_id].append(e)
    seen = set(detectable)
    for elder, ts in triggers:
        # Any episode excuses its trigger, even one no reading showed (not a false alarm).
        hits = [e for e in by_elder[elder] if e.start_ms <= ts <= e.end_ms + AFTER_END_MS]
        for e in hits:
            if e in seen:
                first.setdefault(e, ts)
        if not hits:
            false_alarms += 1
    return ReplayScore(
        bands=bands,
        days=days,
        detectable=len(detectable),
        found=len(first),
        false_alarms=false_alarms,
        latency_min=sorted((ts - e.start_ms) / 60_000 for e, ts in first.items()),
        cpu_us=cpu_us,
        missed=[e.detail for e in detectable if e not in first],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elders", type=int, default=1000)
    parser.add_argument("--days", type=float, default=4.0)
    parser.add_argument("--per-day", type=float, default=0.05, help="episodes per elder-day")
    parser.add_argument(
        "--seeds", default=",".join(map(str, SCORING_SEEDS)), help="comma-separated seeds"
    )
    args = parser.parse_args()
    found = detectable = false = 0
    band_days = 0.0
    latencies: list[float] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        readings, episodes, bands = simulate(args.elders, args.days, seed, args.per_day)
        result = score(readings, episodes, bands, args.days)
        found, detectable = found + result.found, detectable + result.detectable
        false += result.false_alarms
        band_days += bands * args.days
        latencies += result.latency_min
        print(
            f"seed {seed}: {bands} bands x {args.days:g} days, {len(readings):,} readings; "
            f"episodes found {result.found}/{result.detectable} detectable "
            f"({len(episodes)} in all); false alarms {result.false_alarms} "
            f"({result.false_per_band_day:.3f} per band-day); {result.cpu_us:.1f} us of CPU "
            f"per reading; missed: {'; '.join(result.missed) or 'none'}"
        )
    lat = np.array(latencies) if latencies else np.zeros(1)
    print(
        f"pooled: sensitivity {found}/{detectable} = {found / max(1, detectable):.3f}; "
        f"false alarms {false / band_days:.3f} per band-day; minutes from onset to the alert "
        f"p50 {np.median(lat):.1f}, p90 {np.percentile(lat, 90):.1f}, max {lat.max():.1f}"
    )


if __name__ == "__main__":
    main()
