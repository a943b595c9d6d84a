"""The dispatcher console: accounts, the alert API, the live feed and the page.

The public names are loaded lazily so that the command line (and the pure account and
ordering cores) never pull in FastAPI or the connection pool.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "create_app": "dashboard.app",
    "DashboardSettings": "dashboard.settings",
    "FeedHub": "dashboard.feed",
    "Role": "dashboard.accounts",
    "User": "dashboard.accounts",
    "Outcome": "dashboard.accounts",
    "queue_key": "dashboard.ordering",
    "ensure_demo_accounts": "dashboard.demo",
    "serve": "dashboard.server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dashboard' has no attribute {name!r}")
