"""Scoring alerts against a simulation's ground truth (pure): one alert per incident, every kind.

Matching is one-to-one: an incident is detected by the earliest alert of its kind for its elder
raised at or after its onset and within the kind's window that no earlier incident took. An
alert raised before the onset is never a detection (it would score a 0 s delay): it is a false
alarm, like every alert no incident took, except a repeat: a further alert raised within the
window (or, for a condition of known length, before its end) of an incident whose alert a person
already closed (a fire still burning, an elder still away, an arrhythmia still on), counted
apart. A wearer's cancel and the smoke detector's own nuisance close are
counted apart from the false alarms a person had to handle. Proportions
carry Wilson intervals (Wilson, JASA 1927) and rates exact Poisson ones (Garwood 1936), so
runs over several seeds pool into one figure with its uncertainty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from alerting.lifecycle import AlertRow
from evaluation.fall_report import poisson_rate, wilson
from gateway.contract import AlertKind, AlertStatus, DeviceType

# How long after an incident's onset an alert of its kind still counts as catching it.
MATCH_WINDOW_S: Mapping[str, float] = {
    "sos": 60.0,
    "fall": 120.0,
    "smoke": 900.0,
    "wandering": 3600.0,
    "device_offline": 3 * 3600.0,
    "low_battery": 3600.0,
    "inactivity": 6 * 3600.0,
    "anomaly": 3600.0,
}
# Which devices can raise each kind falsely (the false-alarm rate is per device-day of these).
DEVICE_TYPES: Mapping[str, tuple[DeviceType, ...]] = {
    "sos": (DeviceType.BUTTON, DeviceType.BAND, DeviceType.CANE),
    "fall": (DeviceType.CANE,),
    "smoke": (DeviceType.SMOKE,),
    "wandering": (DeviceType.BAND,),
    "device_offline": tuple(DeviceType),
    "low_battery": tuple(DeviceType),
    "inactivity": (DeviceType.BAND, DeviceType.CANE),
    "anomaly": (DeviceType.BAND,),
}
assert set(MATCH_WINDOW_S) == {k.value for k in AlertKind} == set(DEVICE_TYPES)
NUISANCE_PREFIX = "nuisance"


@dataclass(frozen=True, slots=True)
class Truth:
    """One ground-truth record, reduced to what scoring needs.

    `ref_ts` is when the incident became detectable on the wire (first smoke reading over the
    threshold, first fix outside the zone), else `start_ts`. An excursion that never took the
    elder out of the safe zone during the run is not `observable` and is not scored. `end_ts`
    is when a condition with a known length ends (an arrhythmia, an immobility): an alert of
    its kind up to then is a repeat, not a false alarm, even past the match window.
    """

    kind: str
    real: bool
    elder_id: str
    device_id: str
    start_ts: int
    ref_ts: int
    observable: bool = True
    end_ts: int | None = None


def condition_end_ms(start_ts: int, detail: str | None) -> int | None:
    """End of a condition whose ground-truth detail gives its length (`hours=2.50`), or None."""
    for part in (detail or "").split():
        if part.startswith("hours="):
            try:
                return start_ts + int(float(part.removeprefix("hours=")) * 3_600_000)
            except ValueError:
                return None
    return None


@dataclass(slots=True)
class KindScore:
    """Figures for one alert kind (summable over runs with `add`)."""

    kind: str
    incidents: int = 0
    detected: int = 0
    false_alarms: int = 0  # alerts no incident took that a person had to close
    repeats: int = 0  # further alerts during an incident already alerted (staff closed one)
    cancelled: int = 0  # withdrawn by the wearer before anyone took them
    auto_closed: int = 0  # closed by the detector as a nuisance before anyone took them
    device_days: float = 0.0
    delays_s: list[float] = field(default_factory=list)
    ref_delays_s: list[float] = field(default_factory=list)

    @property
    def sensitivity(self) -> float:
        """Share of real incidents alerted (NaN with none)."""
        return self.detected / self.incidents if self.incidents else float("nan")

    @property
    def sensitivity_ci(self) -> tuple[float, float]:
        """Wilson 95 % interval of the sensitivity."""
        return wilson(self.detected, self.incidents)

    @property
    def false_per_device_day(self) -> float:
        """False alarms per device-day of the devices that can raise this kind."""
        return self.false_alarms / self.device_days if self.device_days else float("nan")

    @property
    def false_per_device_day_ci(self) -> tuple[float, float]:
        """Exact Poisson 95 % interval of the false-alarm rate per device-day."""
        lo, hi = poisson_rate(self.false_alarms, self.device_days * 24)
        return lo * 24, hi * 24

    def add(self, other: KindScore) -> None:
        """Pool another run's figures of the same kind into this one."""
        self.incidents += other.incidents
        self.detected += other.detected
        self.false_alarms += other.false_alarms
        self.repeats += other.repeats
        self.cancelled += other.cancelled
        self.auto_closed += other.auto_closed
        self.device_days += other.device_days
        self.delays_s += other.delays_s
        self.ref_delays_s += other.ref_delays_s

    def pct(self, values: Sequence[float], q: float) -> float:
        """A percentile of `values` (NaN when empty)."""
        return float(np.percentile(values, q)) if values else float("nan")


def score(
    truths: Iterable[Truth],
    alerts: Iterable[AlertRow],
    device_counts: Mapping[DeviceType, int],
    days: float,
) -> dict[str, KindScore]:
    """Match alerts to real incidents one to one, per kind.

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
    mine = sorted((a for a in alerts if a.kind is AlertKind(kind)), key=lambda a: a.raised_ts)
    used: set[str] = set()
    for truth in sorted(truths, key=lambda t: t.start_ts):
        hit = next(
            (
                a
                for a in mine
                if a.alert_id not in used
                and a.elder_id == truth.elder_id
                and truth.start_ts <= a.raised_ts <= truth.start_ts + window_ms
            ),
            None,
        )
        if hit is not None:
            used.add(hit.alert_id)
        if not truth.observable:
            continue
        ks.incidents += 1
        if hit is not None:
            ks.detected += 1
            ks.delays_s.append((hit.raised_ts - truth.start_ts) / 1000)
            ks.ref_delays_s.append(max(0.0, (hit.raised_ts - truth.ref_ts) / 1000))
    for alert in mine:
        if alert.alert_id in used:
            continue
        if any(
            t.elder_id == alert.elder_id
            and t.start_ts <= alert.raised_ts <= max(t.start_ts + window_ms, t.end_ts or 0)
            for t in truths
        ):
            ks.repeats += 1  # the incident was still on after its alert was closed
        elif alert.status is AlertStatus.CANCELLED:
            ks.cancelled += 1
        elif auto_closed_nuisance(alert):
            ks.auto_closed += 1
        else:
            ks.false_alarms += 1
    return ks


def auto_closed_nuisance(alert: AlertRow) -> bool:
    """Resolved by its detector as a nuisance before anyone acknowledged it."""
    return (
        alert.status is AlertStatus.RESOLVED
        and alert.acked_ts is None
        and (alert.reason.startswith("unverified") or alert.reason.startswith("fire suspected"))
    )


def pool(runs: Iterable[Mapping[str, KindScore]]) -> dict[str, KindScore]:
    """Sum the figures of several runs (seeds) kind by kind."""
    out: dict[str, KindScore] = {}
    for run in runs:
        for kind, ks in run.items():
            out.setdefault(kind, KindScore(kind)).add(ks)
    return out


def _ci(lo_hi: tuple[float, float], digits: int) -> str:
    return f"[{lo_hi[0]:.{digits}f}, {lo_hi[1]:.{digits}f}]"


def format_table(scores: Mapping[str, KindScore]) -> str:
    """A plain-text table of the scores with 95 % intervals."""
    head = (
        f"{'kind':<15}{'incid':>6}{'sens':>7}{'95% CI':>16}{'false':>6}{'fa/dev-day':>11}"
        f"{'95% CI':>18}{'repeat':>7}{'cancel':>7}{'auto':>5}{'p50 s':>8}{'p99 s':>8}"
        f"{'ref p50':>9}"
    )
    lines = [head, "-" * len(head)]
    for ks in scores.values():
        lines.append(
            f"{ks.kind:<15}{ks.incidents:>6}{ks.sensitivity:>7.3f}"
            f"{_ci(ks.sensitivity_ci, 3) if ks.incidents else '-':>16}{ks.false_alarms:>6}"
            f"{ks.false_per_device_day:>11.4f}{_ci(ks.false_per_device_day_ci, 3):>18}"
            f"{ks.repeats:>7}{ks.cancelled:>7}{ks.auto_closed:>5}{ks.pct(ks.delays_s, 50):>8.1f}"
            f"{ks.pct(ks.delays_s, 99):>8.1f}{ks.pct(ks.ref_delays_s, 50):>9.2f}"
        )
    return "\n".join(lines)
