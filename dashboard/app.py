"""The dispatcher console's FastAPI app: built per settings, resources opened in the lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from dashboard.feed import FeedHub
from dashboard.metrics import install_metrics
from dashboard.publisher import AlertPublisher
from dashboard.routes import ROUTERS
from dashboard.settings import DashboardSettings
from ingest.migrate import apply_migrations
from ingest.pg import connect, connect_kwargs

logger = logging.getLogger(__name__)

# Bound of each shutdown step (feed, MQTT, pool), s: each normally ends in well under a
# second; the bound keeps a stuck step from holding up a restart (systemd's default stop
# timeout is 90 s, Docker's 10 s before SIGKILL).
SHUTDOWN_STEP_S = 3.0


def wall_ms() -> int:
    """The platform clock, ms since the epoch."""
    return time.time_ns() // 1_000_000


def pool_kwargs(url: str, statement_timeout_ms: int) -> dict[str, Any]:
    """Connection keywords of `ingest.pg.connect_kwargs`, keeping options already in `url`.

    A test's URL carries `options=-csearch_path=…`; the timeouts' options would replace it,
    so both are merged as `ingest.pg.connect` does.
    """
    kwargs = connect_kwargs(
        statement_timeout_ms=statement_timeout_ms, application_name="eldercare-dashboard"
    )
    existing = psycopg.conninfo.conninfo_to_dict(url).get("options")
    if existing:
        kwargs["options"] = f"{existing} {kwargs['options']}"
    kwargs["autocommit"] = True
    return kwargs


def open_pool(settings: DashboardSettings) -> ConnectionPool[Any]:
    """A connection pool of autocommit connections, opened and checked."""
    pool: ConnectionPool[Any] = ConnectionPool(
        settings.database_url,
        kwargs=pool_kwargs(settings.database_url, settings.statement_timeout_ms),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        open=False,
        name="dashboard",
    )
    pool.open(wait=True, timeout=15)
    return pool


async def shutdown(
    hub: FeedHub,
    publisher: AlertPublisher | None,
    pool: ConnectionPool[Any],
    step_s: float = SHUTDOWN_STEP_S,
) -> None:
    """Stop the live feed, the MQTT client and the pool, each step within `step_s`.

    The blocking steps run in worker threads, so the event loop keeps serving the feed's
    clients their close frames meanwhile; a step that overruns is logged and passed over.
    """
    t0 = time.monotonic()
    await hub.stop(step_s)
    if publisher is not None:
        await asyncio.to_thread(publisher.stop, step_s)
    # Connections still checked out (a reader cancelled mid-query) close when returned.
    await asyncio.to_thread(pool.close, step_s)
    logger.info("dashboard stopped in %.2f s", time.monotonic() - t0)


def create_app(
    settings: DashboardSettings | None = None, *, clock: Callable[[], int] = wall_ms
) -> FastAPI:
    """Build the app; the pool, the MQTT client and the live feed start in its lifespan.

    Args:
        settings: configuration (from the environment when None).
        clock: the platform clock in ms (tests may pass their own).
    """
    cfg = settings if settings is not None else DashboardSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if cfg.migrate_on_start:
            with connect(cfg.database_url, autocommit=True) as conn:
                apply_migrations(conn)
        pool = open_pool(cfg)
        publisher = AlertPublisher(cfg.mqtt_url, cfg.topic_prefix) if cfg.mqtt_publish else None
        if publisher is not None:
            publisher.start()
        hub = FeedHub(
            pool,
            lambda: psycopg.AsyncConnection.connect(
                cfg.database_url, **pool_kwargs(cfg.database_url, 0)
            ),
            queue_max=cfg.feed_queue_max,
            page=cfg.feed_page,
            poll_s=cfg.feed_poll_s,
            close_wait_s=cfg.feed_close_wait_s,
        )
        await hub.start()
        app.state.pool = pool
        app.state.publisher = publisher
        app.state.hub = hub
        try:
            yield
        finally:
            await shutdown(hub, publisher, pool)

    app = FastAPI(
        title="eldercare dispatcher console",
        version="1",
        summary="Alerts, elders, devices, care centres and the live alert feed.",
        lifespan=lifespan,
    )
    app.state.settings = cfg
    app.state.clock = clock
    for router in ROUTERS:
        app.include_router(router)
    install_metrics(app)
    return app
