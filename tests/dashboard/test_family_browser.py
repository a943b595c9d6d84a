"""The family page in headless Chromium against the dashboard under uvicorn: sign-in, a
linked elder's alert arriving live (another elder's never), "I'm going" seen by the other
member, the centre's take and the all-clear, the service worker and a push subscription."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import sync_playwright

from alerting.notify.db import publish_public_key
from alerting.notify.settings import NotifySettings
from alerting.notify.vapid import load_key, public_key_b64
from dashboard.accounts import Role
from dashboard.settings import DashboardSettings
from tests.dashboard.conftest import PASSWORD, DashFleet, RaiseAlert, make_user
from tests.dashboard.telemetry_rows import add_band
from tests.dashboard.test_browser import CHROMIUM, _Dashboard

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
APPEAR_MS = 15_000


@pytest.fixture
def dash(schema_url: str, mqtt_url: str, topic_prefix: str, dash_fleet: DashFleet,
         tmp_path: Path) -> Iterator[_Dashboard]:  # fmt: skip
    settings = DashboardSettings(
        database_url=schema_url, mqtt_url=mqtt_url, topic_prefix=topic_prefix,
        migrate_on_start=False, insecure_cookies=True, pool_min_size=1, pool_max_size=6,
        feed_poll_s=1.0,
    )  # fmt: skip
    server = _Dashboard(settings)
    cfg = NotifySettings(database_url=schema_url, vapid_key_path=tmp_path / "vapid.pem")
    server.server.config.app.state.notify_settings = cfg
    with psycopg.connect(schema_url, autocommit=True) as conn:  # as the notifier does at start
        publish_public_key(conn, public_key_b64(load_key(cfg)), int(time.time() * 1000))
    with server:
        yield server


@pytest.fixture
def chromium() -> Iterator[Any]:
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            yield b
        finally:
            b.close()


def _page(chromium: Any, base: str, user: str, lang: str) -> Any:
    ctx = chromium.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
        has_touch=True, locale=lang,
    )  # fmt: skip
    ctx.grant_permissions(["notifications"], origin=base)
    page = ctx.new_page()
    page.on("console", lambda m: print("console:", m.type, m.text))
    page.on("pageerror", lambda e: print("pageerror:", e))
    page.goto(f"{base}/family")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_selector("#app:not([hidden])")
    if not lang.startswith("zh"):  # accounts start in Chinese; the header switches
        page.click("#lang")
    return page


def test_family_page_live_alert_going_take_and_all_clear(
    dash: _Dashboard, chromium: Any, schema_url: str, dash_fleet: DashFleet,
    raise_alert: RaiseAlert,
) -> None:  # fmt: skip
    mine, theirs = dash_fleet.elders[0], dash_fleet.elders[1]
    son = make_user(schema_url, Role.FAMILY, elder_ids=(mine,))
    daughter = make_user(schema_url, Role.FAMILY, elder_ids=(mine,))
    disp = make_user(schema_url, Role.DISPATCHER, center_id=dash_fleet.center_a)
    page = _page(chromium, dash.url, son, "en-GB")
    other = _page(chromium, dash.url, daughter, "zh-CN")
    page.wait_for_selector("#conn[data-state='live']")
    other.wait_for_selector("#conn[data-state='live']")
    assert page.locator(f"#elder-{mine}").count() == 1
    assert page.locator(f"#elder-{theirs}").count() == 0

    now = int(time.time() * 1000)
    with psycopg.connect(schema_url) as conn:
        add_band(conn, dash_fleet.device(mine, "band"), [(now - 4000, 39.9322, 116.3731, 72, 3)])
        conn.commit()
    stranger_alert = raise_alert(theirs)
    alert = raise_alert(mine)
    card = page.locator(f"#alert-{alert.alert_id}")
    card.wait_for(timeout=APPEAR_MS)
    assert "SOS call · Elder 0" in card.inner_text()
    assert "Waiting for the care centre" in card.inner_text()
    other.locator(f"#alert-{alert.alert_id}").wait_for(timeout=APPEAR_MS)
    # The position shows while the alert is open, on the small map against home.
    page.wait_for_selector(f"#elder-{mine} .pos svg", timeout=APPEAR_MS)
    # Two taps: "I'm going", then the confirmation.
    card.locator("button.going").click()
    card.locator("button.confirm").click()
    other.wait_for_selector(
        f"#alert-{alert.alert_id} .going-list li:has-text('{son}')", timeout=APPEAR_MS
    )
    page.wait_for_selector(f"#alert-{alert.alert_id} .going-list li:has-text('You are')")

    with httpx.Client(base_url=dash.url) as api:
        login = api.post("/api/v1/auth/login", json={"username": disp, "password": PASSWORD})
        api.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        assert api.post(f"/api/v1/alerts/{alert.alert_id}/ack").status_code == 200
        history = api.get(f"/api/v1/alerts/{alert.alert_id}").json()["history"]
        assert any(h["actor"] == son and h["note"] == "going" for h in history)
        page.wait_for_selector(
            f"#alert-{alert.alert_id}[data-status='acknowledged']", timeout=APPEAR_MS
        )
        assert "Taken by A" in card.inner_text()
        _shot(page, "taken", full=True)
        _shot(other, "taken-zh")
        assert (
            api.post(
                f"/api/v1/alerts/{alert.alert_id}/resolve", json={"outcome": "visit"}
            ).status_code
            == 200
        )
    page.wait_for_selector(f"#alert-{alert.alert_id}[data-status='resolved']", timeout=APPEAR_MS)
    page.wait_for_selector(f"#elder-{mine} .pos", state="detached", timeout=APPEAR_MS)
    other.wait_for_selector(f"#alert-{alert.alert_id}[data-status='resolved']", timeout=APPEAR_MS)
    assert "All clear" in card.inner_text()
    assert "已解除" in other.locator(f"#alert-{alert.alert_id}").inner_text()
    # Another family's elder never reached either page.
    time.sleep(1.0)
    for p in (page, other):
        assert p.locator(f"#alert-{stranger_alert.alert_id}").count() == 0
        assert stranger_alert.alert_id not in p.content()


def test_service_worker_registers_and_push_is_offered(
    dash: _Dashboard, chromium: Any, schema_url: str, dash_fleet: DashFleet
) -> None:
    user = make_user(schema_url, Role.FAMILY, elder_ids=(dash_fleet.elders[0],))
    page = _page(chromium, dash.url, user, "en-GB")
    page.wait_for_selector("body[data-sw='ready']", timeout=APPEAR_MS)
    scope = page.evaluate(
        "navigator.serviceWorker.getRegistration('/family').then(r => r && r.scope)"
    )
    assert scope == f"{dash.url}/family"
    manifest = page.evaluate(
        "fetch(document.querySelector('link[rel=manifest]').href).then(r => r.json())"
    )
    assert manifest["start_url"] == "/family"
    # With permission granted the page subscribes on its own; headless Chromium has no push
    # service to reach, so the page either stored a subscription or says why it could not.
    page.wait_for_function(
        "document.getElementById('push-state').textContent.length > 0", timeout=APPEAR_MS
    )
    text = page.locator("#push-state").inner_text()
    with psycopg.connect(schema_url) as conn:
        subs = conn.execute(
            "SELECT count(*) FROM push_subscriptions AS s JOIN users AS u ON u.id = s.user_id"
            " WHERE u.username = %s",
            (user,),
        ).fetchone()
    assert subs is not None
    assert (subs[0] == 1 and "on for this device" in text) or "Could not turn on push" in text, text
    _shot(page, "settings", full=True)


def _shot(page: Any, name: str, full: bool = False) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"family-{name}.png"
    page.screenshot(path=str(path), full_page=full)
    return path
