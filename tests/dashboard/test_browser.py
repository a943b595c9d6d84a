"""The console in headless Chromium against the running platform: Mosquitto, the alerting
service, the dashboard under uvicorn, a dispatcher working an alert by keyboard alone."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import sync_playwright

from alerting import store
from alerting.model import Raise, Trigger
from dashboard.accounts import Role
from dashboard.app import create_app
from dashboard.ordering import queue_key
from dashboard.settings import DashboardSettings
from gateway import parse_fleet
from gateway.contract import AlertKind, DeviceType, Severity
from gateway.geo import distance_m
from gateway.messages import Event
from tests.alerting.helpers import DevicePublisher, prepare_db, running, settings_for
from tests.dashboard.conftest import PASSWORD, make_user
from tests.dashboard.telemetry_rows import add_band, add_smoke

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
# A delivery within a second is the console's target; a loaded CI machine gets generous room.
APPEAR_TIMEOUT_MS = 15_000


def _fleet(suffix: str) -> dict[str, Any]:
    """Two centres, one elder with a button and full responder details (contract §3)."""
    elder = f"el-{suffix}"
    return {
        "care_centers": [
            {
                "id": f"cc-a-{suffix}",
                "name": "Xinjiekou centre",
                "lat": 39.9400,
                "lon": 116.3660,
                "capacity": 3,
                "coverage_km2": 3.0,
            },
            {
                "id": f"cc-b-{suffix}",
                "name": "Yuetan centre",
                "lat": 39.9130,
                "lon": 116.3470,
                "capacity": 3,
                "coverage_km2": 3.0,
            },
        ],
        "elders": [
            {
                "id": elder,
                "name": "Wang Fang",
                "home_lat": 39.9385,
                "home_lon": 116.3650,
                "safe_radius_m": 300,
                "address": "Xinjiekou Outer St 12, courtyard 3, unit 2, flat 501",
                "phone": "+86 10 6222 0001",
                "notes": "Courtyard gate on the east side; 5th floor, no lift",
                "access_code": "4721",
                "families": [
                    {
                        "id": f"fam-{suffix}",
                        "name": "Li Wei",
                        "phone": "+86 139 0000 0001",
                        "relation": "son",
                        "key_holder": True,
                        "available": [{"from": "00:00", "to": "23:59"}],
                    },
                ],
            }
        ],
        "devices": [
            {"id": f"btn-{suffix}", "type": "button", "elder_id": elder, "heartbeat_s": 300},
            {"id": f"band-{suffix}", "type": "band", "elder_id": elder, "heartbeat_s": 300},
            {"id": f"smoke-{suffix}", "type": "smoke", "elder_id": elder, "heartbeat_s": 300},
        ],
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Dashboard:
    """`create_app` under uvicorn in a thread, on its own port."""

    def __init__(self, settings: DashboardSettings, port: int | None = None) -> None:
        self.settings = settings
        self.port = port or _free_port()
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> _Dashboard:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive(), "dashboard failed to start"
            assert time.monotonic() < deadline, "dashboard did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def platform(
    schema_url: str, mqtt_url: str, topic_prefix: str, device_suffix: str
) -> Iterator[tuple[_Dashboard, str]]:
    """Migrated schema with the fleet, the alerting service and the dashboard, all running;
    yields the dashboard and a dispatcher of centre A."""
    prepare_db(schema_url, parse_fleet(_fleet(device_suffix)))
    user = make_user(schema_url, Role.DISPATCHER, center_id=f"cc-a-{device_suffix}")
    settings = DashboardSettings(
        database_url=schema_url,
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
        migrate_on_start=False,
        insecure_cookies=True,  # plain http on localhost
        pool_min_size=1,
        pool_max_size=6,
        feed_poll_s=1.0,
    )
    with running(settings_for(mqtt_url, schema_url, topic_prefix)), _Dashboard(settings) as dash:
        yield dash, user


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            # The desktop autoplay policy: audio only after a gesture on the document.
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--autoplay-policy=document-user-activation-required",
            ],
        )
        try:
            yield b
        finally:
            b.close()


def _sign_in(page: Any, base: str, user: str) -> None:
    page.goto(f"{base}/")
    page.wait_for_selector("#login-user")
    assert page.url.endswith("/login")
    page.fill("#login-user", user)
    page.fill("#login-pass", PASSWORD)
    page.press("#login-pass", "Enter")  # a key press: the gesture that arms the audio
    page.wait_for_selector("#console-view:not([hidden])")
    page.wait_for_selector("#live.ok")  # the feed is connected


def _cues(page: Any) -> list[dict[str, Any]]:
    cues: list[dict[str, Any]] = page.evaluate("window.eldercareConsole.state.cues")
    return cues


def _wait_cues(page: Any, n: int, timeout_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while len(cues := _cues(page)) < n:
        assert time.monotonic() < deadline, cues
        time.sleep(0.25)
    return cues


def _shot(page: Any, name: str, selector: str | None = None) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"console-{name}.png"
    if selector is None:
        page.screenshot(path=str(path))
    else:
        page.locator(selector).screenshot(path=str(path))
    return path


@pytest.mark.slow
def test_dispatcher_takes_and_closes_a_button_press_by_keyboard(
    platform: tuple[_Dashboard, str],
    browser: Any,
    mqtt_url: str,
    topic_prefix: str,
    device_suffix: str,
    schema_url: str,
) -> None:
    dash, user = platform
    page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="en-GB")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _sign_in(page, dash.url, user)
    assert page.is_hidden("#audio-banner")  # the sign-in key press armed the sound
    page.evaluate("window.__samePage = 'yes'")

    devices = DevicePublisher(mqtt_url, topic_prefix)
    try:
        sent = time.monotonic()
        devices.send(
            Event(
                device_id=f"btn-{device_suffix}",
                type=DeviceType.BUTTON,
                seq=1,
                ts=int(time.time() * 1000),
                event="press",
            )
        )
        page.wait_for_selector(".q-item.sev-critical.untaken", timeout=APPEAR_TIMEOUT_MS)
        appeared_s = time.monotonic() - sent
    finally:
        devices.close()
    assert page.evaluate("window.__samePage") == "yes"  # no reload
    print(f"button press -> alert on the page: {appeared_s * 1000:.0f} ms")
    item = page.locator(".q-item").first
    assert "Wang Fang" in item.inner_text()
    page.wait_for_selector("#critical-banner:not([hidden])")
    page.wait_for_selector("#detail-body:not([hidden])")  # the head of the queue is open
    page.wait_for_timeout(600)
    _shot(page, "queue")
    _shot(page, "map", "#map-panel")
    assert page.locator("#map-alerts circle").count() >= 1
    assert page.locator("#map-district path").count() >= 1
    assert page.locator("#map-grid path").count() > 40  # the 1 km grid over ~50 km²

    # The audible cue repeats while nobody has taken the alert (every 4 s), and stops after.
    cues = _wait_cues(page, 2, timeout_s=15)
    assert all(c["played"] and c["sound"] == "critical" for c in cues), cues

    # Take -> verify (procedure step 1) -> outcome -> close, by keyboard only.
    page.keyboard.press("q")
    page.keyboard.press("t")
    page.wait_for_selector(f"#d-state:has-text('taken by {user}')")
    page.wait_for_selector("#critical-banner[hidden]", state="attached")
    page.wait_for_selector(".secret")  # the access code, shown to the taker only
    taken_cues = len(_cues(page))
    page.keyboard.press("1")  # talked to the elder
    page.wait_for_selector(".procedure li.done")
    page.wait_for_timeout(300)
    _shot(page, "detail")
    page.keyboard.press("o")
    page.wait_for_selector("#outcome-dialog[open]")
    page.keyboard.press("Enter")  # no outcome chosen: refused
    page.wait_for_selector("#outcome-error:has-text('required')")
    page.keyboard.press("2")  # handled by phone
    page.keyboard.press("Tab")
    page.keyboard.type("Pressed by mistake while cleaning; she is fine.")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#outcome-dialog:not([open])", state="attached")
    page.wait_for_selector("#queue-empty:not([hidden])")
    assert len(_cues(page)) == taken_cues  # silent since the take
    assert not errors, errors

    # The state survives a reload, and the audit names the dispatcher for every action.
    page.reload()
    page.wait_for_selector("#live.ok")
    page.wait_for_selector("#queue-empty:not([hidden])")
    assert page.locator(".q-item").count() == 0
    with psycopg.connect(schema_url) as conn:
        (alert_id, status, outcome) = conn.execute(
            "SELECT alert_id, status, outcome FROM alerts WHERE elder_id = %s",
            (f"el-{device_suffix}",),
        ).fetchone() or (None, None, None)
        actions = conn.execute(
            "SELECT action, username FROM audit WHERE target = %s ORDER BY id", (alert_id,)
        ).fetchall()
        steps = conn.execute(
            "SELECT step, actor FROM alert_steps WHERE alert_id = %s", (alert_id,)
        ).fetchall()
    assert (status, outcome) == ("resolved", "handled_by_phone")
    assert [tuple(a) for a in actions] == [("take", user), ("step", user), ("resolve", user)]
    assert [tuple(s) for s in steps] == [("talk", user)]


def _raise(
    schema_url: str,
    suffix: str,
    kind: AlertKind,
    severity: Severity,
    device: str,
    at_ms: int,
    lat: float,
    lon: float,
) -> str:
    """An alert stored as the alerting service stores it, routed to centre A."""
    trig = Trigger(
        kind=kind, severity=severity, device_id=f"{device}-{suffix}", event_ts=at_ms, reason="test"
    )
    with psycopg.connect(schema_url) as conn:
        out = store.raise_alert(
            conn,
            Raise(elder_id=f"el-{suffix}", trigger=trig, lat=lat, lon=lon),
            lambda la, lo: (f"cc-a-{suffix}", 150.0, True, False),
            lambda c, la, lo: (150.0, True),
            at_ms,
        )
    assert out is not None
    return out[0].alert_id


# A wandering walk: 20 fixes over 10 minutes heading north-west from home, about 900 m out.
HOME = (39.9385, 116.3650)
TRACK = [(HOME[0] + 0.0004 * i, HOME[1] - 0.0003 * i) for i in range(20)]


@pytest.mark.slow
def test_fire_card_telemetry_chart_and_wandering_track(
    platform: tuple[_Dashboard, str], browser: Any, schema_url: str, device_suffix: str
) -> None:
    dash, user = platform
    now = int(time.time() * 1000)
    with psycopg.connect(schema_url) as conn:
        add_band(
            conn,
            f"band-{device_suffix}",
            [
                (now - 600_000 + 30_000 * i, lat, lon, 90, None)
                for i, (lat, lon) in enumerate(TRACK)
            ],
        )
        add_smoke(
            conn,
            f"smoke-{device_suffix}",
            [(now - 600_000 + 30_000 * i, 0.01 + 0.01 * i, 24 + 0.7 * i) for i in range(20)],
        )
        conn.commit()
    page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="en-GB")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _sign_in(page, dash.url, user)
    wander = _raise(
        schema_url,
        device_suffix,
        AlertKind.WANDERING,
        Severity.HIGH,
        "band",
        now - 30_000,
        *TRACK[-1],
    )
    smoke = _raise(
        schema_url, device_suffix, AlertKind.SMOKE, Severity.HIGH, "smoke", now - 20_000, *HOME
    )
    page.wait_for_selector(".q-item >> nth=1", timeout=APPEAR_TIMEOUT_MS)
    ids = page.eval_on_selector_all(".q-item", "els => els.map((e) => e.dataset.id)")
    assert ids == [smoke, wander]  # smoke pinned first though it is newer and no more severe
    assert page.locator("#map-alerts path").count() == 1  # the fire, drawn as a triangle

    # One key opens the call-119 card with the address and access notes.
    page.keyboard.press("f")
    page.wait_for_selector("#fire-dialog[open]")
    page.wait_for_selector("#fire-body:has-text('flat 501')")
    card = page.inner_text("#fire-body")
    assert "119" in card and "flat 501" in card and "Courtyard gate" in card
    _shot(page, "fire-card")
    page.keyboard.press("Escape")
    page.wait_for_selector("#fire-dialog:not([open])", state="attached")
    assert page.inner_text("#procedure li:first-child").startswith("1. Call 119")
    page.wait_for_selector("#chart svg[aria-label^='Smoke']")
    page.wait_for_selector("#chart svg[aria-label^='Temperature']")
    _shot(page, "detail-smoke")

    page.keyboard.press("q")
    page.keyboard.press("ArrowDown")
    page.wait_for_selector("#map-track polyline")
    page.wait_for_selector("#chart svg[aria-label^='Distance from home']")
    points = page.get_attribute("#map-track polyline", "points") or ""
    assert len(points.split()) == len(TRACK)
    out_m = distance_m(*HOME, *TRACK[-1])
    label = page.get_attribute("#chart svg", "aria-label") or ""
    assert f"to {out_m:.2f}" in label, (label, out_m)
    _shot(page, "map-track", "#map-panel")
    _shot(page, "detail-wandering")

    # Signing out while holding an alert asks for a handover first.
    page.keyboard.press("t")
    page.wait_for_selector(f"#d-state:has-text('taken by {user}')")
    page.click("#logout")
    page.wait_for_selector("#handover-dialog[open]")
    assert wander in page.inner_text("#handover-held")
    assert page.is_visible("#console-view")
    assert not errors, errors


@pytest.mark.slow
def test_page_order_language_and_blocked_sound(
    platform: tuple[_Dashboard, str], browser: Any
) -> None:
    dash, user = platform
    page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page.goto(f"{dash.url}/login")
    page.wait_for_selector("#login-user")
    assert page.inner_text("#login-view h1") == "调度台登录"
    page.select_option("#login-lang", "en")
    page.wait_for_selector("#login-view h1:has-text('Dispatcher console')")

    # The page's queue order equals the server's on 200 random mixes.
    rng = random.Random(7)
    kinds = [k.value for k in AlertKind]
    sevs = [s.value for s in Severity]
    mixes = [
        [
            {
                "alert_id": f"al-{i}-{j}",
                "kind": rng.choice(kinds),
                "severity": rng.choice(sevs),
                "raised_ts": rng.randint(0, 50),
            }
            for j in range(rng.randint(1, 12))
        ]
        for i in range(200)
    ]
    got = page.evaluate(
        """async (mixes) => {
            const { queueCompare } = await import('/static/js/order.js');
            return mixes.map((m) => [...m].sort(queueCompare).map((a) => a.alert_id));
        }""",
        mixes,
    )
    want = [
        [
            a["alert_id"]
            for a in sorted(
                m, key=lambda a: queue_key(a["kind"], a["severity"], a["raised_ts"], a["alert_id"])
            )
        ]
        for m in mixes
    ]
    assert got == want

    # Signed in, then opened afresh in a browser with the session but no gesture yet: audio is
    # blocked and the red banner says so, until a key press turns the sound on.
    page.fill("#login-user", user)
    page.fill("#login-pass", PASSWORD)
    page.press("#login-pass", "Enter")
    page.wait_for_selector("#live.ok")
    fresh = browser.new_context(
        storage_state=page.context.storage_state(), viewport={"width": 1366, "height": 768}
    )
    page = fresh.new_page()
    # Playwright runs every evaluation, wait_for_selector's included, as a user gesture (CDP
    # Runtime.callFunctionOn with userGesture: true), so no evaluation may touch this page before
    # the console has asked for sound. The console asks before it opens its feed: waiting for
    # the feed's websocket, an event and not an evaluation, keeps the page free of gestures.
    with page.expect_websocket():
        page.goto(f"{dash.url}/")
    page.wait_for_selector("#audio-banner:not([hidden])")
    page.wait_for_selector("#live.ok")
    page.keyboard.press("s")
    page.wait_for_selector("#audio-banner[hidden]", state="attached")
    assert page.inner_text("#live-text").startswith("Live")
    # The language chosen stays chosen.
    assert page.inner_text("#queue-h").startswith("Live queue")


WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def _axe_violations(page: Any) -> list[str]:
    """axe-core's WCAG 2.2 A/AA rules on the page as it is now: `rule: target` per failure."""
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_AA}})
    return [
        f"{v['id']}: {node['target']}"
        for v in results.response["violations"]
        for node in v["nodes"]
    ]


@pytest.mark.slow
def test_console_passes_the_wcag_aa_rules_of_axe(
    platform: tuple[_Dashboard, str], browser: Any, schema_url: str, device_suffix: str
) -> None:
    dash, user = platform
    page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page.goto(f"{dash.url}/login")
    page.wait_for_selector("#login-user")
    assert _axe_violations(page) == []
    _sign_in(page, dash.url, user)
    now = int(time.time() * 1000)
    _raise(schema_url, device_suffix, AlertKind.SMOKE, Severity.HIGH, "smoke", now, *HOME)
    _raise(schema_url, device_suffix, AlertKind.FALL, Severity.CRITICAL, "band", now, *HOME)
    page.wait_for_selector(".q-item >> nth=1", timeout=APPEAR_TIMEOUT_MS)
    page.wait_for_selector("#detail-body:not([hidden])")
    page.wait_for_timeout(500)
    assert _axe_violations(page) == []  # the console in Chinese, with the queue and detail
    page.keyboard.press("t")
    page.wait_for_selector(f"#d-state:has-text('{user}')")
    page.keyboard.press("o")
    page.wait_for_selector("#outcome-dialog[open]")
    assert _axe_violations(page) == []  # the outcome dialog


@pytest.mark.slow
def test_page_resumes_after_a_dashboard_restart_without_reload(
    platform: tuple[_Dashboard, str], browser: Any, schema_url: str, device_suffix: str
) -> None:
    dash, user = platform
    page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="en-GB")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    _sign_in(page, dash.url, user)
    page.evaluate("window.__samePage = 'yes'")
    now = int(time.time() * 1000)
    first = _raise(schema_url, device_suffix, AlertKind.FALL, Severity.CRITICAL, "band", now, *HOME)
    page.wait_for_selector(f".q-item[data-id='{first}']", timeout=APPEAR_TIMEOUT_MS)
    last_id = page.evaluate("window.eldercareConsole.state.feed.lastEventId")
    assert isinstance(last_id, int)

    dash.__exit__(None, None, None)  # the dashboard goes away
    page.wait_for_selector("#live.down")
    assert "Disconnected" in page.inner_text("#live-text")
    second = _raise(schema_url, device_suffix, AlertKind.SMOKE, Severity.HIGH, "smoke", now, *HOME)
    with _Dashboard(dash.settings, port=dash.port):  # back on the same address
        page.wait_for_selector(f".q-item[data-id='{second}']", timeout=30_000)
        page.wait_for_selector("#live.ok")
        ids = page.eval_on_selector_all(".q-item", "els => els.map((e) => e.dataset.id)")
        assert ids == [second, first]  # nothing lost, nothing twice, smoke first
        assert page.evaluate("window.__samePage") == "yes"
        assert any(url.endswith(f"?after={last_id}") for url in sockets), sockets
        assert page.evaluate("window.eldercareConsole.state.feed.lastEventId") > last_id
