"""Liveness, readiness (database and broker reachable) and Prometheus metrics."""

from __future__ import annotations

import socket
from typing import Any

import psycopg
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from psycopg_pool import PoolTimeout
from pydantic import BaseModel

from dashboard.deps import get_pool, get_settings
from dashboard.metrics import DashboardMetrics
from gateway.mqtt import parse_mqtt_url

router = APIRouter(tags=["health"])

# Probes answer within a load balancer's usual 5 s probe timeout even when both checks hang.
DB_TIMEOUT_S = 2.0
BROKER_TIMEOUT_S = 2.0


class Health(BaseModel):
    """The process answers."""

    status: str


class Readiness(BaseModel):
    """Whether the database and the broker are reachable from this process."""

    status: str
    database: bool
    broker: bool


def database_ready(request: Request) -> bool:
    """A pooled connection answers `SELECT 1` within DB_TIMEOUT_S."""
    try:
        with get_pool(request).connection(timeout=DB_TIMEOUT_S) as conn:
            conn.execute("SELECT 1").fetchone()
    except (psycopg.Error, PoolTimeout, OSError):
        return False
    return True


def broker_ready(mqtt_url: str) -> bool:
    """The broker's port accepts a TCP connection within BROKER_TIMEOUT_S."""
    addr = parse_mqtt_url(mqtt_url)
    try:
        socket.create_connection((addr.host, addr.port), timeout=BROKER_TIMEOUT_S).close()
    except OSError:
        return False
    return True


@router.get("/healthz")
def healthz() -> Health:
    """Liveness: the process serves requests."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"model": Readiness, "description": "Not ready"}})
def readyz(request: Request) -> Any:
    """Readiness: 200 when the database and the broker are reachable, 503 otherwise."""
    db = database_ready(request)
    broker = broker_ready(get_settings(request).mqtt_url)
    body = Readiness(status="ready" if db and broker else "not ready", database=db, broker=broker)
    return JSONResponse(body.model_dump(), status_code=200 if db and broker else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics of this process."""
    found: DashboardMetrics | None = getattr(request.app.state, "metrics", None)
    body = found.exposition() if found is not None else b""
    return Response(body, media_type=CONTENT_TYPE_LATEST)
