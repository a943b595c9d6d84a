"""Sign-in, sessions, CSRF, login throttling and sign-out."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from fastapi.testclient import TestClient

from dashboard.deps import CSRF_HEADER, SESSION_COOKIE
from tests.dashboard.conftest import PASSWORD, attach, make_user


def test_login_sets_a_secure_httponly_strict_cookie_and_me_answers(
    app_client: TestClient, schema_url: str
) -> None:
    name = make_user(schema_url, "admin")
    resp = app_client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert resp.status_code == 200
    body = resp.json()
    assert body["user"]["username"] == name and body["user"]["role"] == "admin"
    cookie = resp.headers["set-cookie"].lower()
    assert f"{SESSION_COOKIE}=" in cookie
    for flag in ("httponly", "secure", "samesite=strict", "path=/"):
        assert flag in cookie
    me = app_client.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json() == body


def test_session_token_is_stored_hashed(app_client: TestClient, schema_url: str) -> None:
    name = make_user(schema_url, "admin")
    app_client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    token = app_client.cookies[SESSION_COOKIE]
    with psycopg.connect(schema_url) as conn:
        stored = [bytes(r[0]) for r in conn.execute("SELECT token_hash FROM user_sessions")]
    assert len(stored) == 1 and token.encode() not in stored[0] and len(stored[0]) == 32


def test_wrong_password_and_unknown_user_get_401(app_client: TestClient, schema_url: str) -> None:
    name = make_user(schema_url, "dispatcher", center_id="cc-x")
    for user, pw in ((name, "wrong password"), ("nobody", PASSWORD)):
        resp = app_client.post("/api/v1/auth/login", json={"username": user, "password": pw})
        assert resp.status_code == 401
    assert app_client.get("/api/v1/auth/me").status_code == 401


def test_login_is_throttled_after_five_failures(app_client: TestClient, schema_url: str) -> None:
    name = make_user(schema_url, "admin")
    for _ in range(5):
        bad = {"username": name, "password": "wrong password"}
        assert app_client.post("/api/v1/auth/login", json=bad).status_code == 401
    good = {"username": name, "password": PASSWORD}
    assert app_client.post("/api/v1/auth/login", json=good).status_code == 429
    with psycopg.connect(schema_url) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY id")]
    assert actions == ["login_failed"] * 5


def test_disabled_account_cannot_log_in_and_loses_its_session(
    client_as: Callable[..., TestClient], schema_url: str, app_client: TestClient
) -> None:
    client = client_as("dispatcher")
    name = client.get("/api/v1/auth/me").json()["user"]["username"]
    with psycopg.connect(schema_url) as conn:
        conn.execute("UPDATE users SET disabled = true WHERE username = %s", (name,))
    assert client.get("/api/v1/auth/me").status_code == 401
    again = app_client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert again.status_code == 401


def test_state_changing_requests_need_the_csrf_token(
    client_as: Callable[..., TestClient],
) -> None:
    client = client_as("admin")
    token = client.headers.pop(CSRF_HEADER)
    assert client.post("/api/v1/auth/logout", json={}).status_code == 403
    client.headers[CSRF_HEADER] = "forged"
    assert client.post("/api/v1/auth/logout", json={}).status_code == 403
    client.headers[CSRF_HEADER] = token
    assert client.post("/api/v1/auth/logout", json={}).status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401


def test_logout_ends_only_that_session(app_client: TestClient, schema_url: str) -> None:
    name = make_user(schema_url, "admin")
    first, second = attach(app_client), attach(app_client)
    tokens = []
    for c in (first, second):
        body = c.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD}).json()
        tokens.append(body["csrf_token"])
    first.headers[CSRF_HEADER] = tokens[0]
    assert first.post("/api/v1/auth/logout", json={}).status_code == 204
    assert first.get("/api/v1/auth/me").status_code == 401
    assert second.get("/api/v1/auth/me").status_code == 200
