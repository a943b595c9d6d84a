"""The console page: routes, assets, security headers, and complete message catalogues."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dashboard.accounts import Outcome, Role, Step
from gateway.contract import AlertKind, AlertStatus, DeviceType, Severity

STATIC = Path(str(resources.files("dashboard").joinpath("static")))
ClientAs = Callable[..., TestClient]


def _catalogue(lang: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((STATIC / "i18n" / f"{lang}.json").read_text("utf-8"))
    return data


# The console's own files (other pages of the package keep their own folders and catalogues).
CONSOLE_FILES = [STATIC / "console.html", *STATIC.glob("css/*.css"), *STATIC.glob("js/*.js")]


def _sources() -> dict[str, str]:
    return {str(p.relative_to(STATIC)): p.read_text("utf-8") for p in CONSOLE_FILES}


def test_console_redirects_to_login_without_a_session(app_client: TestClient) -> None:
    resp = app_client.get("/", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/login"
    page = app_client.get("/login")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="login-form"' in page.text


def test_console_served_to_a_signed_in_user_with_a_strict_policy(client_as: ClientAs) -> None:
    client = client_as(Role.DISPATCHER)
    resp = client.get("/", follow_redirects=False)
    assert resp.status_code == 200 and 'id="queue-list"' in resp.text
    csp = resp.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["x-content-type-options"] == "nosniff"


def _referenced_assets() -> set[str]:
    refs = set()
    for name, text in _sources().items():
        refs |= set(re.findall(r"""["'](/static/[^"'`$]+)["']""", text))
        if name.startswith("js/"):
            refs |= {f"/static/js/{m}" for m in re.findall(r"""from "\./([\w.-]+)";""", text)}
    refs |= {"/static/i18n/en.json", "/static/i18n/zh-CN.json"}
    return refs


def test_every_referenced_asset_is_served_with_its_type(app_client: TestClient) -> None:
    types = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}
    refs = _referenced_assets()
    assert "/static/js/app.js" in refs and "/static/js/map.js" in refs
    for ref in sorted(refs):
        resp = app_client.get(ref)
        assert resp.status_code == 200, ref
        assert resp.headers["content-type"].startswith(types[Path(ref).suffix]), ref


@pytest.mark.parametrize(
    "path",
    [
        "/static/../routes/pages.py",
        "/static/%2e%2e/settings.py",
        "/static/js/%2e%2e/%2e%2e/app.py",
        "/static/.hidden",
        "/static/js",
        "/static/nope.js",
        "/static/js\\..\\..\\app.py",
    ],
    ids=["dotdot", "encoded", "nested", "hidden", "directory", "missing", "backslash"],
)
def test_static_refuses_anything_outside_its_folder(app_client: TestClient, path: str) -> None:
    resp = app_client.get(path)
    assert resp.status_code == 404
    assert "import" not in resp.text


def test_catalogues_have_the_same_keys_and_cover_every_message() -> None:
    en, zh = _catalogue("en"), _catalogue("zh-CN")
    assert set(en) == set(zh)
    used: set[str] = set()
    for text in _sources().values():
        used |= set(re.findall(r"""\bt\("([a-z0-9_]+)"[,)]""", text))
        used |= set(re.findall(r'data-i18n="([a-z0-9_]+)"', text))
    assert used and not used - set(en), sorted(used - set(en))
    families = {
        "kind_": AlertKind,
        "status_": AlertStatus,
        "sev_": Severity,
        "outcome_": Outcome,
        "role_": Role,
        "device_": DeviceType,
    }
    for prefix, enum in families.items():
        missing = {f"{prefix}{v.value}" for v in enum} - set(en)
        assert not missing, missing
    assert {f"step_{s.value}" for s in Step if s is not Step.EMERGENCY} <= set(en)
    # Placeholders agree between the languages, so no message loses a figure in translation.
    for key in en:
        assert set(re.findall(r"\{\w+\}", en[key])) == set(re.findall(r"\{\w+\}", zh[key])), key
    assert all(zh[k] != en[k] for k in ("queue", "take", "close_outcome", "kind_fall"))


def test_page_fetches_nothing_from_another_origin() -> None:
    for name, text in _sources().items():
        urls = set(re.findall(r"(?:https?|wss?):/+[^\s\"'`)]+", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)
    # Sounds are made with WebAudio and text uses the system's fonts: no media files to fetch.
    for folder in ("", "css", "js", "i18n"):
        for p in (STATIC / folder).glob("*"):
            assert p.suffix not in {".mp3", ".wav", ".ogg", ".woff", ".woff2"}, p


def test_outcome_codes_of_the_page_match_the_api() -> None:
    app_js = (STATIC / "js" / "app.js").read_text("utf-8")
    block = re.search(r"const OUTCOMES = \[(.*?)\];", app_js, re.S)
    assert block is not None
    assert re.findall(r'"(\w+)"', block.group(1)) == [o.value for o in Outcome]
    detail_js = (STATIC / "js" / "detail.js").read_text("utf-8")
    steps = re.search(r"export const STEPS = \[(.*?)\];", detail_js, re.S)
    assert steps is not None
    assert re.findall(r'"(\w+)"', steps.group(1)) == [s.value for s in Step]
