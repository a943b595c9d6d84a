"""PostgreSQL connections with timeouts: no service hangs on a partitioned database.

Every service connection goes through `connect` (or `connect_kwargs` for a pool), so a
network partition surfaces as an `OperationalError` within seconds instead of after the
kernel's TCP retransmission time (about 15 minutes on Linux with the default
`tcp_retries2`), and a stuck statement is cancelled by the server.
"""

from __future__ import annotations

from typing import Any

import psycopg

# libpq connection parameters (PostgreSQL docs, "Parameter Key Words").
CONNECT_TIMEOUT_S = 5
# TCP keepalive probes after 10 s idle, every 5 s, 3 missed -> dead in ~25 s.
KEEPALIVES_IDLE_S = 10
KEEPALIVES_INTERVAL_S = 5
KEEPALIVES_COUNT = 3
# Unacknowledged data on the socket for this long closes it (Linux TCP_USER_TIMEOUT).
TCP_USER_TIMEOUT_MS = 20_000
# The longest statement a service runs is a batch insert of a few thousand rows.
DEFAULT_STATEMENT_TIMEOUT_MS = 30_000
# An idle transaction left open by a bug holds locks; the server ends it after this long.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 300_000


def connect_kwargs(
    *,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    application_name: str = "eldercare",
) -> dict[str, Any]:
    """libpq keyword arguments that bound every wait on the database.

    Args:
        statement_timeout_ms: server-side `statement_timeout` (0 disables it).
        application_name: shown in `pg_stat_activity`.

    Returns:
        Keyword arguments for `psycopg.connect` or `psycopg_pool.ConnectionPool(kwargs=…)`.
        A URL's own `options` are replaced, so pass `search_path` through `connect`'s URL
        only when it is not combined with these (see `connect`).
    """
    return {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "keepalives": 1,
        "keepalives_idle": KEEPALIVES_IDLE_S,
        "keepalives_interval": KEEPALIVES_INTERVAL_S,
        "keepalives_count": KEEPALIVES_COUNT,
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
        "application_name": application_name,
        "options": (
            f"-c statement_timeout={int(statement_timeout_ms)}"
            f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}"
        ),
    }


def connect(
    url: str,
    *,
    autocommit: bool = False,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    application_name: str = "eldercare",
) -> psycopg.Connection[Any]:
    """Open a connection with connect, keepalive, TCP user and statement timeouts.

    Options already in `url` (such as a test's `search_path`) are kept: the timeouts are
    added to them.

    Raises:
        psycopg.OperationalError: the server is unreachable within `CONNECT_TIMEOUT_S`.
    """
    kwargs = connect_kwargs(
        statement_timeout_ms=statement_timeout_ms, application_name=application_name
    )
    existing = psycopg.conninfo.conninfo_to_dict(url).get("options")
    if existing:
        kwargs["options"] = f"{existing} {kwargs['options']}"
    return psycopg.connect(url, autocommit=autocommit, **kwargs)
