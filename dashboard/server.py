"""Serves the console with uvicorn (I/O only)."""

from __future__ import annotations

import uvicorn

from dashboard.app import create_app
from dashboard.settings import DashboardSettings


def serve(settings: DashboardSettings) -> None:
    """Run the app until interrupted (SIGINT or SIGTERM stop it gracefully)."""
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # the eldercare command line configured logging already
        # Websocket keepalive (RFC 6455 §5.5.2 ping): a peer that stops answering is closed,
        # which also ends a dropped feed client that never reads.
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        proxy_headers=False,
    )
