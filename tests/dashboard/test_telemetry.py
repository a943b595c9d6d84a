"""Telemetry per device in server-side buckets, and raw windows around an alert."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import psycopg
import pytest
from fastapi.testclient import TestClient

from dashboard.queries.telemetry import AccelWindow, magnitudes
from tests.dashboard.conftest import DashFleet, RaiseAlert
from tests.dashboard.telemetry_rows import add_band, add_cane, add_smoke

ClientAs = Callable[..., TestClient]
MIN = 60_000


def _minute_ago(n: int) -> int:
    return (int(time.time() * 1000) // MIN - n) * MIN


def test_band_series_in_one_minute_buckets(
    client_as: ClientAs, dash_fleet: DashFleet, schema_url: str
) -> None:
    band = dash_fleet.device(dash_fleet.elders[0], "band")
    t0 = _minute_ago(10)
    rows = [
        (t0, 39.930, 116.370, 60, 5),
        (t0 + 10_000, 39.932, 116.372, 80, 7),
        (t0 + 70_000, 39.934, 116.374, 90, None),
        (t0 + 130_000, 39.936, 116.376, None, 1),
        (t0 + 999 * MIN, 39.9, 116.3, 1, 1),  # outside the range
    ]
    with psycopg.connect(schema_url, autocommit=True) as conn:
        add_band(conn, band, rows)
    got = client_as("dispatcher").get(
        f"/api/v1/devices/{band}/telemetry",
        params={"since_ts": t0, "until_ts": t0 + 5 * MIN, "bucket_s": 60},
    )
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["kind"], body["bucket_s"]) == ("band", 60)
    pts = body["points"]
    assert [p["ts"] for p in pts] == [t0, t0 + MIN, t0 + 2 * MIN]
    assert [p["n"] for p in pts] == [2, 1, 1]
    assert [p["steps"] for p in pts] == [12, 0, 1]
    assert pts[0]["hr_bpm"] == pytest.approx(70) and pts[2]["hr_bpm"] is None
    assert pts[0]["lat"] == pytest.approx(39.931)


def test_cane_and_smoke_buckets(
    client_as: ClientAs, dash_fleet: DashFleet, schema_url: str
) -> None:
    e0 = dash_fleet.elders[0]
    cane, smoke = dash_fleet.device(e0, "cane"), dash_fleet.device(e0, "smoke")
    t0 = _minute_ago(10)
    with psycopg.connect(schema_url, autocommit=True) as conn:
        add_cane(conn, cane, t0 + 1_000, 50, [0, 0, 1, 3, 4, 0, 0, 0, 1])
        add_cane(conn, cane, t0 + 3_000, 50, [0, 0, 1, 0, 0, 2])
        add_smoke(conn, smoke, [(t0, 0.01, 21), (t0 + 30_000, 0.2, 35), (t0 + MIN, 0.05, 30)])
    c = client_as("admin")
    params = {"since_ts": t0, "until_ts": t0 + 2 * MIN, "bucket_s": 60}
    pts = c.get(f"/api/v1/devices/{cane}/telemetry", params=params).json()["points"]
    assert len(pts) == 1 and pts[0]["n"] == 2 and pts[0]["peak_g"] == pytest.approx(5.0)
    pts = c.get(f"/api/v1/devices/{smoke}/telemetry", params=params).json()["points"]
    assert [(p["n"], p["smoke_db_m"]) for p in pts] == [
        (2, pytest.approx(0.2)),
        (1, pytest.approx(0.05)),
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"since_ts": 2_000, "until_ts": 1_000},
        {"since_ts": 0, "until_ts": 10_000_000, "bucket_s": 1},
        {"bucket_s": 0},
        {"since_ts": -5},
    ],
    ids=["since-after-until", "too-many-buckets", "zero-bucket", "negative-ts"],
)
def test_bad_ranges_are_422(
    params: dict[str, int], client_as: ClientAs, dash_fleet: DashFleet
) -> None:
    band = dash_fleet.device(dash_fleet.elders[0], "band")
    got = client_as("dispatcher").get(f"/api/v1/devices/{band}/telemetry", params=params)
    assert got.status_code == 422, got.text


def test_default_range_is_the_last_day_in_about_300_buckets(
    client_as: ClientAs, dash_fleet: DashFleet
) -> None:
    band = dash_fleet.device(dash_fleet.elders[0], "band")
    body = client_as("dispatcher").get(f"/api/v1/devices/{band}/telemetry").json()
    assert body["until_ts"] - body["since_ts"] == 86_400_000
    assert body["bucket_s"] == 288 and body["points"] == []


def test_magnitudes_place_samples_back_from_the_window_end() -> None:
    w = AccelWindow(end_ms=10_000, rate_hz=50, accel_g=(0, 0, 1, 3, 4, 0, 0, 0, 2))
    again = AccelWindow(end_ms=10_020, rate_hz=50, accel_g=(0, 0, 7, 1, 0, 0))  # overlaps 1
    got = magnitudes([w, again], 9_970, 10_040)
    assert got == [
        {"ts": 9_980, "g": 5.0},
        {"ts": 10_000, "g": 2.0},
        {"ts": 10_020, "g": 1.0},
    ]
    assert magnitudes([w], 9_990, 9_999) == []


def test_fall_window_is_the_accelerometer_30_s_around_it(
    client_as: ClientAs, dash_fleet: DashFleet, schema_url: str, raise_alert: RaiseAlert
) -> None:
    e0 = dash_fleet.elders[0]
    cane = dash_fleet.device(e0, "cane")
    event = _minute_ago(5)
    alert = raise_alert(e0, "fall", now_ms=event)
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("UPDATE alerts SET device_id = %s WHERE alert_id = %s", (cane, alert.alert_id))
        for k in range(-20, 21):  # 2 s windows of 2 samples at 1 Hz from -40 s to +40 s
            end = event + k * 2_000
            add_cane(conn, cane, end, 1, [0, 0, 1, 0, 3 if k == 0 else 0, 4 if k == 0 else 1])
    body = client_as("family").get(f"/api/v1/alerts/{alert.alert_id}/telemetry").json()
    ts = [p["ts"] for p in body["series"]]
    assert ts[0] >= event - 30_000 and ts[-1] <= event + 30_000 and len(ts) == 61
    peak = max(body["series"], key=lambda p: p["g"])
    assert peak == {"ts": event, "g": 5.0}
    assert body["track"] == [] and (body["since_ts"], body["until_ts"]) == (
        event - 30_000,
        event + 30_000,
    )


def test_wandering_track_and_smoke_curve(
    client_as: ClientAs, dash_fleet: DashFleet, schema_url: str, raise_alert: RaiseAlert
) -> None:
    e0, e1 = dash_fleet.elders[0], dash_fleet.elders[1]
    event = _minute_ago(40)
    wander = raise_alert(e0, "wandering", now_ms=event)
    fire = raise_alert(e1, "smoke", now_ms=event)
    with psycopg.connect(schema_url, autocommit=True) as conn:
        fixes = [(event + k * MIN, 39.93 + k / 1e4, 116.37, None, None) for k in range(-40, 41, 5)]
        add_band(conn, dash_fleet.device(e0, "band"), fixes)
        curve = [(event + k * 30_000, 0.01 * max(0, k + 4), 20.0 + k) for k in range(-30, 31)]
        add_smoke(conn, dash_fleet.device(e1, "smoke"), curve)
    c = client_as("dispatcher")
    track = c.get(f"/api/v1/alerts/{wander.alert_id}/telemetry").json()["track"]
    assert [p["ts"] for p in track] == [event + k * MIN for k in range(-30, 31, 5)]
    assert track[0]["lat"] == pytest.approx(39.927) and track[0]["hacc_m"] == 10
    series = c.get(f"/api/v1/alerts/{fire.alert_id}/telemetry").json()["series"]
    assert [p["ts"] for p in series] == [event + k * 30_000 for k in range(-20, 21)]
    assert series[-1]["smoke_db_m"] == pytest.approx(0.24) and series[-1]["temp_c"] == 40
    family = client_as("family", elder_ids=(e0,))
    assert family.get(f"/api/v1/alerts/{fire.alert_id}/telemetry").status_code == 404
    assert family.get(f"/api/v1/alerts/{wander.alert_id}/telemetry").status_code == 200
    assert c.get("/api/v1/alerts/nope/telemetry").status_code == 404


def test_other_kinds_show_the_elders_band_and_cane(
    client_as: ClientAs, dash_fleet: DashFleet, schema_url: str, raise_alert: RaiseAlert
) -> None:
    e0 = dash_fleet.elders[0]
    event = _minute_ago(20)
    sos = raise_alert(e0, "sos", now_ms=event)
    with psycopg.connect(schema_url, autocommit=True) as conn:
        add_band(conn, dash_fleet.device(e0, "band"), [(event - MIN, 39.93, 116.37, 101, 0)])
    series = client_as("admin").get(f"/api/v1/alerts/{sos.alert_id}/telemetry").json()["series"]
    assert series == [{"ts": event - MIN, "hr_bpm": 101, "lat": 39.93, "lon": 116.37}]
    assert not math.isnan(series[0]["lat"])
