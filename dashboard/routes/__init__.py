"""The API routers; app.py includes every router of ROUTERS."""

from __future__ import annotations

from fastapi import APIRouter

from dashboard.routes.admin import router as admin_router
from dashboard.routes.alerts import router as alerts_router
from dashboard.routes.auth import router as auth_router
from dashboard.routes.centers import router as centers_router
from dashboard.routes.devices import router as devices_router
from dashboard.routes.elders import router as elders_router
from dashboard.routes.feed import router as feed_router
from dashboard.routes.health import router as health_router
from dashboard.routes.kpi import router as kpi_router
from dashboard.routes.map import router as map_router

ROUTERS: list[APIRouter] = [auth_router, alerts_router, feed_router]
ROUTERS += [
    elders_router,
    devices_router,
    centers_router,
    kpi_router,
    map_router,
    admin_router,
    health_router,
]

from dashboard.routes.pages import router as pages_router  # noqa: E402  (the page, after the API)

ROUTERS.append(pages_router)

from dashboard.routes.family import router as family_router  # noqa: E402
from dashboard.routes.push import router as push_router  # noqa: E402
from dashboard.routes.webhooks import router as webhooks_router  # noqa: E402

ROUTERS += [push_router, webhooks_router, family_router]
