"""Fixtures of the console tests: a migrated schema with a small fleet, the app, and clients
signed in per role (in-process, against the real PostgreSQL and Mosquitto)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from alerting import store
from alerting.lifecycle import AlertRow
from alerting.model import Raise, Trigger
from dashboard.accounts import Role, hash_password
from dashboard.app import create_app
from dashboard.deps import CSRF_HEADER
from dashboard.queries import users as users_q
from dashboard.settings import DashboardSettings
from gateway import parse_fleet
from gateway.contract import AlertKind, Severity
from ingest.migrate import apply_migrations
from ingest.registry import import_fleet

PASSWORD = "correct horse battery"
# https, so the Secure session cookie is sent back as a browser would.
BASE_URL = "https://testserver"
# The test client joins websocket paths to ws://, where a Secure cookie is not sent.
WS_BASE = "wss://testserver"


@dataclass(frozen=True, slots=True)
class DashFleet:
    """Ids of the test fleet: two centres, three elders, one device of each type per elder."""

    center_a: str
    center_b: str
    elders: tuple[str, ...]
    suffix: str

    def device(self, elder_id: str, kind: str = "btn") -> str:
        """The device of `kind` (btn, band, cane, smoke) of an elder."""
        return f"{kind}-{elder_id}"


def _fleet_json(suffix: str) -> dict[str, Any]:
    elders = [f"el{i}-{suffix}" for i in range(3)]
    return {
        "care_centers": [
            {
                "id": f"cc-a-{suffix}",
                "name": "A",
                "lat": 39.9310,
                "lon": 116.3710,
                "capacity": 3,
                "coverage_km2": 1.0,
            },
            {
                "id": f"cc-b-{suffix}",
                "name": "B",
                "lat": 39.9500,
                "lon": 116.3900,
                "capacity": 3,
                "coverage_km2": 1.0,
            },
        ],
        "elders": [
            {
                "id": e,
                "name": f"Elder {i}",
                "home_lat": 39.93 + i * 0.001,
                "home_lon": 116.37,
                "safe_radius_m": 300,
                "access_code": f"40{i}1",
            }
            for i, e in enumerate(elders)
        ],
        "devices": [
            {"id": f"{t}-{e}", "type": ty, "elder_id": e, "heartbeat_s": 300}
            for e in elders
            for t, ty in (("btn", "button"), ("band", "band"), ("cane", "cane"), ("smoke", "smoke"))
        ],
    }


@pytest.fixture
def dash_fleet(schema_url: str, device_suffix: str) -> DashFleet:
    """The test schema migrated, with a small fleet imported."""
    with psycopg.connect(schema_url, autocommit=True) as conn:
        apply_migrations(conn)
    with psycopg.connect(schema_url) as conn:
        import_fleet(conn, parse_fleet(_fleet_json(device_suffix)))
        conn.commit()
    return DashFleet(
        center_a=f"cc-a-{device_suffix}",
        center_b=f"cc-b-{device_suffix}",
        elders=tuple(f"el{i}-{device_suffix}" for i in range(3)),
        suffix=device_suffix,
    )


@pytest.fixture
def app_factory(
    schema_url: str, mqtt_url: str, topic_prefix: str, dash_fleet: DashFleet
) -> Callable[..., FastAPI]:
    """Builds an app on the test schema and topic prefix; keyword arguments override settings."""

    def make(**overrides: Any) -> FastAPI:
        values: dict[str, Any] = {
            "database_url": schema_url,
            "mqtt_url": mqtt_url,
            "topic_prefix": topic_prefix,
            "pool_min_size": 1,
            "pool_max_size": 8,
            "migrate_on_start": False,
            "feed_poll_s": 1.0,
        }
        values.update(overrides)
        return create_app(DashboardSettings(**values))

    return make


@pytest.fixture
def app_client(app_factory: Callable[..., FastAPI]) -> Iterator[TestClient]:
    """An anonymous client of a started app (its lifespan runs for the whole test)."""
    with TestClient(app_factory(), base_url=BASE_URL) as client:
        yield client


def make_user(
    schema_url: str,
    role: Role | str,
    *,
    username: str | None = None,
    center_id: str | None = None,
    elder_ids: tuple[str, ...] = (),
    password: str = PASSWORD,
) -> str:
    """Create an account directly in the database; returns its username."""
    name = username or f"{Role(role).value[:4]}{uuid.uuid4().hex[:8]}"
    with psycopg.connect(schema_url) as conn:
        users_q.add_user(
            conn,
            name,
            Role(role),
            hash_password(password),
            int(time.time() * 1000),
            center_id=center_id,
            elder_ids=elder_ids,
            display_name=name.title(),
        )
        conn.commit()
    return name


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    """Sign in through the API and set the CSRF header on the client; returns the body."""
    resp = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    client.headers[CSRF_HEADER] = body["csrf_token"]
    return body


def attach(app_client: TestClient) -> TestClient:
    """Another client (own cookies) of the same started app, on the same event loop."""
    client = TestClient(app_client.app, base_url=BASE_URL)
    # The started client's portal runs the app's loop, where the live feed's fan-out lives.
    client.portal = app_client.portal
    return client


@pytest.fixture
def client_as(
    app_client: TestClient, schema_url: str, dash_fleet: DashFleet
) -> Iterator[Callable[..., TestClient]]:
    """`client_as(role, center_id=…, elder_ids=…, username=…, app_client=…)`: a signed-in
    client with its CSRF header set. Dispatchers default to centre A, family accounts to the
    first elder."""
    with ExitStack() as stack:

        def make(
            role: Role | str,
            *,
            center_id: str | None = None,
            elder_ids: tuple[str, ...] | None = None,
            username: str | None = None,
            on: TestClient | None = None,
        ) -> TestClient:
            r = Role(role)
            if r is Role.DISPATCHER and center_id is None:
                center_id = dash_fleet.center_a
            if r is Role.FAMILY and elder_ids is None:
                elder_ids = (dash_fleet.elders[0],)
            name = make_user(
                schema_url,
                r,
                username=username,
                center_id=center_id,
                elder_ids=elder_ids or (),
            )
            client = stack.enter_context(attach(on or app_client))
            login(client, name)
            return client

        yield make


RaiseAlert = Callable[..., AlertRow]


@pytest.fixture
def raise_alert(schema_url: str, dash_fleet: DashFleet) -> RaiseAlert:
    """`raise_alert(elder_id, kind, severity=…, center_id=…, now_ms=…)` through alerting.store."""

    def do(
        elder_id: str,
        kind: AlertKind | str = AlertKind.SOS,
        *,
        severity: Severity | str = Severity.CRITICAL,
        center_id: str | None = None,
        now_ms: int | None = None,
    ) -> AlertRow:
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        center = center_id or dash_fleet.center_a
        device = {"smoke": "smoke", "wandering": "band", "fall": "band"}.get(str(kind), "btn")
        trig = Trigger(
            kind=AlertKind(kind),
            severity=Severity(severity),
            device_id=dash_fleet.device(elder_id, device),
            event_ts=now,
            reason="test",
        )
        action = Raise(elder_id=elder_id, trigger=trig, lat=39.93, lon=116.37)
        with psycopg.connect(schema_url) as conn:
            out = store.raise_alert(
                conn,
                action,
                lambda lat, lon: (center, 120.0, True, False),
                lambda c, lat, lon: (120.0, True),
                now,
            )
        assert out is not None and out[1], "alert not created"
        return out[0]

    return do
