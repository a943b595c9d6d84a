"""Devices: live state, bucketed telemetry, and the raw window of telemetry around an alert."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from dashboard.accounts import Role, User
from dashboard.deps import Conn, CurrentUser, NowMs
from dashboard.errors import Responses, errors
from dashboard.queries import telemetry as tq
from dashboard.queries.devices import family_sees_position, for_family, get_device
from dashboard.routes.elders import AUTH, DeviceOut
from ingest.migrate import StorageMode, recorded_mode

router = APIRouter(prefix="/api/v1", tags=["devices"])

DAY_MS = 86_400_000
MAX_POINTS = 2_000  # buckets per answer: a chart over a 1366 px wide screen needs fewer
AUTO_POINTS = 300  # buckets when the caller gives no bucket_s
# Raw windows around an alert, device ms before and after its trigger. A fall is judged from
# the seconds around the impact (free fall, impact, stillness: 150 ms to a few s); a wandering
# episode by the half hour of track before and after it; a fire by the smoke curve's rise.
WINDOWS_MS = {"fall": (30_000, 30_000), "wandering": (1_800_000, 1_800_000)}
DEFAULT_WINDOW_MS = (600_000, 600_000)
RAW_LIMIT = 5_000  # rows of one raw window

NOT_VISIBLE: Responses = errors(404, s404="Unknown, or not linked to this family account")


class TelemetryOut(BaseModel):
    """Bucketed series of one device: `ts` is the bucket start (device time, ms)."""

    device_id: str
    kind: str
    bucket_s: int
    since_ts: int
    until_ts: int
    points: list[dict[str, float | int | None]]


class AlertTelemetryOut(BaseModel):
    """Raw telemetry around an alert (device time, ms).

    fall: `series` of accelerometer magnitudes `{ts, g}`; wandering: `track` of fixes
    `{ts, lat, lon, hacc_m}`; smoke: `series` of `{ts, smoke_db_m, temp_c}`; other kinds:
    `series` of the elder's band and cane points `{ts, hr_bpm, lat, lon}`.
    """

    alert_id: str
    kind: str
    device_id: str
    since_ts: int
    until_ts: int
    series: list[dict[str, float | int | None]]
    track: list[dict[str, float | int | None]]


def storage_mode(request: Request, conn: Conn) -> StorageMode:
    """The database's storage mode, read once per app."""
    mode: StorageMode | None = getattr(request.app.state, "storage_mode", None)
    if mode is None:
        mode = recorded_mode(conn) or StorageMode.POSTGRESQL
        request.app.state.storage_mode = mode
    return mode


def _auto_bucket_s(span_ms: int) -> int:
    return max(1, math.ceil(span_ms / 1000 / AUTO_POINTS))


def _hides_position(conn: Conn, user: User, elder_id: str) -> bool:
    """A family account sees an elder's position only while an alert of that elder is active
    (as on `/api/v1/family/elders`); dispatchers and admins always see it."""
    return user.role is Role.FAMILY and not family_sees_position(conn, elder_id)


def without_positions(points: list[tq.Point]) -> list[tq.Point]:
    """The points with `lat` and `lon` null (where they carry them)."""
    return [{**p, "lat": None, "lon": None} if "lat" in p or "lon" in p else p for p in points]


@router.get("/devices/{device_id}", responses={**AUTH, **NOT_VISIBLE})
def device(device_id: str, conn: Conn, user: CurrentUser) -> DeviceOut:
    """A device with its online state, battery, last seen and last position (a family
    account gets the position only while an alert of the elder is active)."""
    found = get_device(conn, device_id)
    if found is None or not user.sees_elder(found.elder_id):
        raise HTTPException(404, "no such device")
    if user.role is Role.FAMILY:
        (found,) = for_family(conn, [found])
    return DeviceOut.of(found)


@router.get(
    "/devices/{device_id}/telemetry",
    responses={**AUTH, **NOT_VISIBLE, **errors(422, s422="Bad range or too many buckets")},
)
def device_telemetry(
    device_id: str,
    request: Request,
    conn: Conn,
    user: CurrentUser,
    now: NowMs,
    since_ts: Annotated[int | None, Query(ge=0, le=2**53)] = None,
    until_ts: Annotated[int | None, Query(ge=0, le=2**53)] = None,
    bucket_s: Annotated[int | None, Query(ge=1, le=31 * 86_400)] = None,
) -> TelemetryOut:
    """The device's series in time buckets (default: the last 24 h in about 300 buckets);
    `lat`/`lon` null for a family account unless an alert of the elder is active."""
    found = get_device(conn, device_id)
    if found is None or not user.sees_elder(found.elder_id):
        raise HTTPException(404, "no such device")
    until = until_ts if until_ts is not None else now
    since = since_ts if since_ts is not None else until - DAY_MS
    if since >= until:
        raise HTTPException(422, "since_ts must be before until_ts")
    bucket = bucket_s or _auto_bucket_s(until - since)
    if (until - since) / (bucket * 1000) > MAX_POINTS:
        raise HTTPException(422, f"more than {MAX_POINTS} buckets: raise bucket_s")
    points = tq.bucketed(
        conn, storage_mode(request, conn), device_id, found.type, since, until, bucket
    )
    if _hides_position(conn, user, found.elder_id):
        points = without_positions(points)
    return TelemetryOut(
        device_id=device_id,
        kind=found.type,
        bucket_s=bucket,
        since_ts=since,
        until_ts=until,
        points=points,
    )


@router.get("/alerts/{alert_id}/telemetry", responses={**AUTH, **NOT_VISIBLE})
def alert_telemetry(alert_id: str, conn: Conn, user: CurrentUser) -> AlertTelemetryOut:
    """The raw telemetry around an alert: what the dispatcher checks before acting (`lat`/`lon`
    null for a family account unless an alert of the elder is active)."""
    ref = tq.alert_ref(conn, alert_id)
    if ref is None or not user.sees_elder(ref.elder_id):
        raise HTTPException(404, "no such alert")
    before, after = WINDOWS_MS.get(ref.kind, DEFAULT_WINDOW_MS)
    since, until = ref.event_ts - before, ref.event_ts + after
    series: list[tq.Point] = []
    track: list[tq.Point] = []
    if ref.kind == "fall" and ref.device_type == "cane":
        series = tq.accel_window(conn, ref.device_id, since, until)
    elif ref.kind == "wandering":
        track = tq.gps_track(conn, ref.device_id, since, until, RAW_LIMIT)
    elif ref.kind == "smoke":
        series = tq.smoke_curve(conn, ref.device_id, since, until, RAW_LIMIT)
    else:
        series = tq.vitals(conn, ref.elder_id, since, until, RAW_LIMIT)
    if _hides_position(conn, user, ref.elder_id):
        series, track = without_positions(series), without_positions(track)
    return AlertTelemetryOut(
        alert_id=ref.alert_id,
        kind=ref.kind,
        device_id=ref.device_id,
        since_ts=since,
        until_ts=until,
        series=series,
        track=track,
    )
