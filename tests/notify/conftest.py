"""Fixtures of the notifier tests: the dashboard's small fleet, family accounts, the local
stand-ins, and a notifier running on the test schema."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alerting.notify.service import Notifier
from alerting.notify.settings import NotifySettings
from dashboard.accounts import Role
from dashboard.queries import notify as notify_q
from dashboard.queries import users as users_q
from tests.dashboard.conftest import DashFleet, dash_fleet, make_user, raise_alert
from tests.notify.standin import BrowserKeys, StandIn, stand_in

__all__ = ["dash_fleet", "raise_alert"]


@pytest.fixture
def standin() -> Iterator[StandIn]:
    """A push service and gateway stand-in on 127.0.0.1."""
    with stand_in() as state:
        yield state


@pytest.fixture
def notify_settings(schema_url: str, tmp_path: Path) -> Callable[..., NotifySettings]:
    """Settings on the test schema with quick retries; keyword arguments override."""

    def make(**overrides: Any) -> NotifySettings:
        values: dict[str, Any] = {
            "database_url": schema_url,
            "vapid_key_path": tmp_path / "vapid.pem",
            "vapid_subject": "mailto:noc@eldercare-test.cn",
            "retry_base_s": 0.2,
            "retry_cap_s": 1.0,
            "poll_s": 0.2,
            "allow_http_loopback": True,
            "voice_after_s": 60.0,
        }
        values.update(overrides)
        return NotifySettings(**values)

    return make


@pytest.fixture
def notifier(notify_settings: Callable[..., NotifySettings]) -> Iterator[Callable[..., Notifier]]:
    """`notifier(**settings)`: a started notifier, stopped at the end of the test."""
    started: list[Notifier] = []

    def make(**overrides: Any) -> Notifier:
        n = Notifier(notify_settings(**overrides))
        n.start()
        started.append(n)
        return n

    yield make
    for n in started:
        n.stop()


def family_member(
    schema_url: str, elder_ids: tuple[str, ...], username: str | None = None
) -> tuple[int, str]:
    """A family account linked to these elders: (user id, username)."""
    name = make_user(schema_url, Role.FAMILY, elder_ids=elder_ids, username=username)
    with psycopg.connect(schema_url) as conn:
        user = users_q.get_user(conn, name)
    assert user is not None
    return user.id, name


def subscribe(schema_url: str, user_id: int, endpoint: str) -> tuple[int, BrowserKeys]:
    """A browser subscription of the user at `endpoint`: (subscription id, browser keys)."""
    keys = BrowserKeys.new()
    with psycopg.connect(schema_url, autocommit=True) as conn:
        sub_id = notify_q.add_subscription(
            conn, user_id, endpoint, keys.p256dh, _b64(keys.auth), "test", int(time.time() * 1000)
        )
    return sub_id, keys


def webhook(
    schema_url: str,
    url: str,
    *,
    user_id: int | None = None,
    center_id: str | None = None,
    channel: str = "message",
) -> tuple[int, str]:
    """A registered webhook: (id, signing secret)."""
    from alerting.notify.signing import new_secret

    secret = new_secret()
    with psycopg.connect(schema_url, autocommit=True) as conn:
        hook = notify_q.add_webhook(
            conn, user_id, center_id, channel, url, secret, int(time.time() * 1000)
        )
    return hook.id, secret


def deliveries(schema_url: str, alert_id: str) -> list[dict[str, Any]]:
    """Every delivery of an alert with its attempts."""
    with psycopg.connect(schema_url) as conn:
        rows = conn.execute(
            "SELECT d.id, d.channel, d.status, d.attempts, d.user_id, d.state_key, d.target_id,"
            " (SELECT count(*) FROM notify_attempts AS t WHERE t.delivery_id = d.id)"
            " FROM notify_deliveries AS d WHERE d.alert_id = %s ORDER BY d.id",
            (alert_id,),
        ).fetchall()
    names = ("id", "channel", "status", "attempts", "user_id", "state_key", "target_id", "tries")
    return [dict(zip(names, r, strict=True)) for r in rows]


def wait_until(check: Callable[[], bool], timeout_s: float = 20.0, what: str = "") -> None:
    """Poll `check` until it holds."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _b64(raw: bytes) -> str:
    from tests.notify.standin import b64url

    return b64url(raw)


_ = DashFleet
