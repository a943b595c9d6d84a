"""Scoring alerts against a simulation's ground truth (pure): sensitivity, false alarms, delay."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from alerting.lifecycle import AlertRow
from gateway.contract import AlertKind, AlertStatus, DeviceType

# How long after an incident's onset an alert of its kind still counts as catching it.
MATCH_WINDOW_S: Mapping[str, float] = {
    "sos": 60.0,
    "fall": 120.0,
    "smoke": 900.0,
    "wandering": 3600.0,
    "device_offline": 3 * 3600.0,
    "low_battery": 3600.0,
}
# Which devices can raise each kind falsely (the false-alarm rate is per device-day of these).
DEVICE_TYPES: Mapping[str, tuple[DeviceType, ...]] = {
    "sos": (DeviceType.BUTTON, DeviceType.BAND, DeviceType.CANE),
    "fall": (DeviceType.CANE,),
    "smoke": (DeviceType.SMOKE,),
    "wandering": (DeviceType.BAND,),
    "device_offline": tuple(DeviceType),
    "low_battery": tuple(DeviceType),
}


@dataclass(frozen=True, slots=True)
class Truth:
    """One ground-truth record, reduced to what scoring needs.

    `ref_ts` is when the incident became detectable on the wire (first smoke reading over the
    threshold, first fix outside the zone), else `start_ts`. An excursion that never took the
    elder out of the safe zone during the run is not `observable` and is not scored.
    """

    kind: str
    real: bool
    elder_id: str
    device_id: str
    start_ts: int
    ref_ts: int
    observable: bool = True


@dataclass(slots=True)
class KindScore:
    """Figures for one alert kind."""

    kind: str
    incidents: int = 0
    detected: int = 0
    false_alarms: int = 0
    cancelled: int = 0
    device_days: float = 0.0
    delays_s: list[float] = field(default_factory=list)
    ref_delays_s: list[float] = field(default_factory=list)

    @property
    def sensitivity(self) -> float:
        """Share of real incidents alerted (NaN with none)."""
        return self.detected / self.incidents if self.incidents else float("nan")

    @property
    def false_per_device_day(self) -> float:
        """False alarms per device-day of the devices that can raise this kind."""
        return self.false_alarms / self.device_days if self.device_days else float("nan")

    def pct(self, values: Sequence[float], q: float) -> float:
        """A percentile of `values` (NaN when empty)."""
        return float(np.percentile(values, q)) if values else float("nan")


def _covers(alert: AlertRow, truth: Truth, window_ms: float) -> bool:
    if alert.kind.value != truth.kind or alert.elder_id != truth.elder_id:
        return False
    if truth.start_ts - 2_000 <= alert.raised_ts <= truth.start_ts + window_ms:
        return True
    # One active alert per elder and kind: an incident during an active alert refreshes it.
    still_open = alert.closed_ts is None or alert.closed_ts >= truth.start_ts
    return alert.raised_ts < truth.start_ts and still_open and alert.last_event_ts >= truth.start_ts


def score(
    truths: Iterable[Truth],
    alerts: Iterable[AlertRow],
    device_counts: Mapping[DeviceType, int],
    days: float,
) -> dict[str, KindScore]:
    """Match alerts to real incidents per kind.

    Args:
        truths: ground truth (real incidents and nuisances).
        alerts: every alert raised during the run (`raised_ts` on the simulated clock).
        device_counts: devices per type in the fleet.
        days: simulated days covered.
    """
    real = [t for t in truths if t.real and t.kind in MATCH_WINDOW_S]
    alert_list = list(alerts)
    out: dict[str, KindScore] = {}
    for kind in MATCH_WINDOW_S:
        ks = _score_kind(kind, [t for t in real if t.kind == kind], alert_list)
        ks.device_days = days * sum(device_counts.get(t, 0) for t in DEVICE_TYPES[kind])
        out[kind] = ks
    return out


def _score_kind(kind: str, truths: list[Truth], alerts: list[AlertRow]) -> KindScore:
    ks = KindScore(kind)
    window_ms = MATCH_WINDOW_S[kind] * 1000
    mine = [a for a in alerts if a.kind is AlertKind(kind)]
    used: set[str] = set()
    for truth in truths:
        hits = [a for a in mine if _covers(a, truth, window_ms)]
        used.update(a.alert_id for a in hits)
        if not truth.observable:
            continue
        ks.incidents += 1
        if hits:
            ks.detected += 1
            first = min(a.raised_ts for a in hits)
            ks.delays_s.append(max(0.0, (first - truth.start_ts) / 1000))
            ks.ref_delays_s.append(max(0.0, (first - truth.ref_ts) / 1000))
    for alert in mine:
        if alert.alert_id in used:
            continue
        if alert.status is AlertStatus.CANCELLED:
            ks.cancelled += 1
        else:
            ks.false_alarms += 1
    return ks


def format_table(scores: Mapping[str, KindScore]) -> str:
    """A plain-text table of the scores."""
    head = (
        f"{'kind':<15}{'incid':>6}{'sens':>7}{'false':>6}{'cancel':>7}{'fa/dev-day':>11}"
        f"{'p50 s':>8}{'p99 s':>8}{'ref p50':>9}{'ref p99':>9}"
    )
    lines = [head, "-" * len(head)]
    for ks in scores.values():
        lines.append(
            f"{ks.kind:<15}{ks.incidents:>6}{ks.sensitivity:>7.3f}{ks.false_alarms:>6}{ks.cancelled:>7}"
            f"{ks.false_per_device_day:>11.4f}{ks.pct(ks.delays_s, 50):>8.1f}"
            f"{ks.pct(ks.delays_s, 99):>8.1f}{ks.pct(ks.ref_delays_s, 50):>9.2f}"
            f"{ks.pct(ks.ref_delays_s, 99):>9.2f}"
        )
    return "\n".join(lines)
