"""Wandering: a band leaving its elder's safe zone, robust to GPS noise, faster at night."""

from __future__ import annotations

from dataclasses import dataclass

from alerting.geo import is_night
from alerting.model import Finding, Trigger
from gateway.contract import AlertKind, Severity
from gateway.geo import distance_m

# GPS wristbands are good to ~10 m in the open and tens of metres in narrow streets
# (multipath; the district reference data). A fix counts as confidently outside when it is
# beyond the zone by more than `hacc_factor` x its reported 68 % accuracy radius.
DEFAULT_HACC_FACTOR = 1.0
# Fixes worse than this say little about which side of a 300 m boundary the wearer is on.
DEFAULT_MAX_HACC_M = 150.0


@dataclass(frozen=True, slots=True)
class SafeZone:
    """The elder's safe zone: home and radius (contract §3)."""

    lat: float
    lon: float
    radius_m: float


@dataclass(slots=True)
class _Track:
    streak: int = 0
    clear_seen: bool = False  # a fix of the current streak was clear of the GPS noise
    alerted: bool = False
    since_ts: int = 0  # first fix of the current streak: the episode start


class WanderingDetector:
    """Counts consecutive fixes outside the zone; raises sooner when a fix is clearly outside.

    Every trigger of one stay outside carries the time of its first outside fix as the
    episode start (`Trigger.episode_ts`).

    By day two consecutive outside fixes are needed (one of them clear of the GPS noise),
    or three in a row; at night, when wandering people with dementia are most at risk,
    one clear fix or two in a row are enough.
    """

    def __init__(
        self,
        zones: dict[str, SafeZone] | None = None,
        *,
        hacc_factor: float = DEFAULT_HACC_FACTOR,
        max_hacc_m: float = DEFAULT_MAX_HACC_M,
    ) -> None:
        self._zones: dict[str, SafeZone] = dict(zones or {})
        self._tracks: dict[str, _Track] = {}
        self.hacc_factor = hacc_factor
        self.max_hacc_m = max_hacc_m

    def set_zone(self, device_id: str, zone: SafeZone) -> None:
        """Set the safe zone a band is checked against."""
        self._zones[device_id] = zone

    def mark_alerted(self, device_id: str) -> None:
        """Note that an active wandering alert exists for this band (state reload)."""
        self._tracks.setdefault(device_id, _Track()).alerted = True

    def on_fix(
        self, device_id: str, ts: int, lat: float, lon: float, hacc_m: float
    ) -> list[Finding]:
        """Handle one GPS fix of a band (device clock `ts`)."""
        zone = self._zones.get(device_id)
        if zone is None or hacc_m > self.max_hacc_m:
            return []
        track = self._tracks.setdefault(device_id, _Track())
        beyond_m = distance_m(zone.lat, zone.lon, lat, lon) - zone.radius_m
        if beyond_m <= 0:
            track.streak = 0
            track.clear_seen = False
            track.alerted = False
            return []
        if track.streak == 0:
            track.since_ts = ts
        track.streak += 1
        clear = beyond_m > self.hacc_factor * hacc_m
        # By day, two in a row of which *any one* is clear: a clear first fix followed by a
        # noisier one (a narrow street) is as good as the other way round.
        track.clear_seen = track.clear_seen or clear
        night = is_night(ts)
        needed = (1 if clear else 2) if night else (2 if track.clear_seen else 3)
        if track.streak < needed:
            return []
        track.alerted = True
        severity = Severity.CRITICAL if night else Severity.HIGH
        reason = f"{beyond_m:.0f} m outside the safe zone ({track.streak} fixes, ±{hacc_m:.0f} m)"
        # One episode per stay outside: every fix of it refreshes the same alert, and once
        # staff closed it, only a return inside (a fix within the zone) starts a new one.
        return [
            Trigger(
                AlertKind.WANDERING,
                severity,
                device_id,
                ts,
                reason,
                lat,
                lon,
                episode_ts=track.since_ts,
            )
        ]
