"""`eldercare user add|list|disable|enable|passwd` against the real database."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import psycopg
import pytest
from fastapi.testclient import TestClient

from eldercare.cli import main
from tests.dashboard.conftest import DashFleet

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(
    schema_url: str,
    dash_fleet: DashFleet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Run:
    monkeypatch.setenv("DATABASE_URL", schema_url)

    def do(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return do


def _login(client: TestClient, user: str, pw: str) -> int:
    resp = client.post("/api/v1/auth/login", json={"username": user, "password": pw})
    return resp.status_code


def test_add_list_disable_enable_passwd(
    run: Run, dash_fleet: DashFleet, app_client: TestClient, schema_url: str
) -> None:
    code, out, _ = run(
        "user",
        "add",
        "wang.li",
        "--role",
        "dispatcher",
        "--center",
        dash_fleet.center_a,
        "--password-stdin",
        stdin="first password\n",
    )
    assert code == 0 and "wang.li" in out
    code, _, _ = run(
        "user",
        "add",
        "zhao",
        "--role",
        "family",
        "--elder",
        dash_fleet.elders[0],
        "--elder",
        dash_fleet.elders[1],
        "--password-stdin",
        stdin="family password\n",
    )
    assert code == 0
    code, out, _ = run("user", "list", "--json")
    rows = {r["username"]: r for r in map(json.loads, out.splitlines())}
    assert rows["wang.li"]["role"] == "dispatcher"
    assert rows["wang.li"]["center_id"] == dash_fleet.center_a
    assert rows["zhao"]["elder_ids"] == sorted(dash_fleet.elders[:2])
    assert _login(app_client, "wang.li", "first password") == 200

    assert run("user", "disable", "wang.li")[0] == 0
    assert app_client.get("/api/v1/auth/me").status_code == 401  # its session ended
    assert _login(app_client, "wang.li", "first password") == 401
    assert run("user", "enable", "wang.li")[0] == 0
    assert run("user", "passwd", "wang.li", "--password-stdin", stdin="second password\n")[0] == 0
    assert _login(app_client, "wang.li", "first password") == 401
    assert _login(app_client, "wang.li", "second password") == 200
    with psycopg.connect(schema_url) as conn:
        stored = conn.execute("SELECT password_hash FROM users WHERE username = 'wang.li'")
        assert stored.fetchone()[0].startswith("$argon2id$")  # type: ignore[index]
        actions = [r[0] for r in conn.execute("SELECT action FROM audit WHERE username = 'cli'")]
    assert actions == ["user_add", "user_add", "user_disable", "user_enable", "user_passwd"]


@pytest.mark.parametrize(
    "argv",
    [
        ("bob", "--role", "dispatcher"),
        ("bob", "--role", "dispatcher", "--center", "cc-nowhere"),
        ("bob", "--role", "family"),
        ("bob", "--role", "family", "--elder", "el-nobody"),
        ("Bob!", "--role", "admin"),
        ("system", "--role", "admin"),
    ],
    ids=["no-centre", "unknown-centre", "no-elder", "unknown-elder", "bad-name", "reserved"],
)
def test_add_refuses_bad_accounts(run: Run, argv: tuple[str, ...]) -> None:
    code, _, err = run("user", "add", *argv, "--password-stdin", stdin="long enough pw\n")
    assert code == 2 and "error" in err
    assert run("user", "list", "--json")[1] == ""


def test_add_refuses_a_short_password_and_a_duplicate(run: Run) -> None:
    assert run("user", "add", "bob", "--role", "admin", "--password-stdin", stdin="short\n")[0] == 2
    assert (
        run("user", "add", "bob", "--role", "admin", "--password-stdin", stdin="long enough\n")[0]
        == 0
    )
    code, _, err = run("user", "add", "bob", "--role", "admin", "--password-stdin", stdin="x" * 9)
    assert code == 1 and "exists" in err
