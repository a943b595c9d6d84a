"""Prometheus metrics of the console: requests, latency and connected websocket clients.

Each app has its own registry (several apps may live in one test process); an ASGI
middleware counts every HTTP request by route template, not by raw path, so label values
stay bounded (Prometheus naming and label guidance).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Seconds; the queue page's target is 100 ms, so the buckets are dense below it.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DashboardMetrics:
    """The console's collectors, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dashboard_http_requests",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dashboard_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.websocket_clients = Gauge(
            "dashboard_websocket_clients",
            "Websocket connections open now",
            registry=self.registry,
        )
        self.websocket_connections = Counter(
            "dashboard_websocket_connections",
            "Websocket connections accepted or refused since start",
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The text exposition format of every collector."""
        return generate_latest(self.registry)


def _route(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class MetricsMiddleware:
    """Pure ASGI middleware (no response buffering, websockets pass through untouched)."""

    def __init__(self, app: ASGIApp, metrics: DashboardMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            self.metrics.websocket_clients.inc()
            self.metrics.websocket_connections.inc()
            try:
                await self.app(scope, receive, send)
            finally:
                self.metrics.websocket_clients.dec()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route, method = _route(scope), str(scope.get("method", ""))
            self.metrics.requests.labels(method, route, str(status[0])).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)


def install_metrics(app: FastAPI) -> DashboardMetrics:
    """Give `app` its metrics (`app.state.metrics`) and the middleware that records them."""
    metrics = DashboardMetrics()
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return metrics
