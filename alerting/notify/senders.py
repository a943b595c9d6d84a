"""HTTP adapters: one Web Push request (RFC 8030/8291/8292) and one signed webhook POST."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import requests
from py_vapid import Vapid02  # type: ignore[import-untyped]
from pywebpush import WebPushException, webpush  # type: ignore[import-untyped]

from alerting.notify import signing
from alerting.notify.policy import Outcome


@dataclass(frozen=True, slots=True)
class Answer:
    """What the far end said: the outcome class, the HTTP status, an error text."""

    outcome: Outcome
    status_code: int | None
    error: str = ""


def classify_push(status: int) -> Outcome:
    """RFC 8030 §7.3: 404/410 mean the subscription is gone; 429 and 5xx are worth retrying;
    any other 4xx (bad VAPID token, payload too large) will not get better by itself."""
    if 200 <= status < 300:
        return Outcome.SENT
    if status in (404, 410):
        return Outcome.GONE
    if status == 429 or status >= 500 or status == 408:
        return Outcome.RETRY
    return Outcome.FAILED


def classify_webhook(status: int) -> Outcome:
    """Standard Webhooks: any 2xx is success, everything else is retried (410: gone)."""
    if 200 <= status < 300:
        return Outcome.SENT
    if status == 410:
        return Outcome.FAILED
    return Outcome.RETRY


def send_push(
    session: requests.Session,
    subscription: tuple[str, str, str],
    body: dict[str, Any],
    key: Vapid02,
    subject: str,
    *,
    ttl_s: int,
    urgent: bool,
    timeout_s: float,
) -> Answer:
    """Encrypt `body` for the subscription (aes128gcm) and POST it with a VAPID token."""
    endpoint, p256dh, auth = subscription
    # RFC 8030 §5.3: "high" may wake a device from power saving; for a fall or an SOS it must.
    headers: dict[str, str | int | float] = {"Urgency": "high" if urgent else "normal"}
    try:
        resp = webpush(
            {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}},
            data=json.dumps(body, separators=(",", ":")),
            vapid_private_key=key,
            # A fresh dict per call: pywebpush fills in `aud` from the first endpoint it sees.
            vapid_claims={"sub": subject, "exp": int(time.time()) + 12 * 3600},
            content_encoding="aes128gcm",
            ttl=ttl_s,
            headers=headers,
            timeout=timeout_s,
            requests_session=session,
        )
    except WebPushException as exc:
        if exc.response is None:
            return Answer(Outcome.RETRY, None, str(exc)[:200])
        status = int(exc.response.status_code)
        return Answer(classify_push(status), status, f"HTTP {status}")
    except requests.RequestException as exc:
        return Answer(Outcome.RETRY, None, type(exc).__name__)
    assert not isinstance(resp, str)
    return Answer(classify_push(resp.status_code), resp.status_code)


def send_webhook(
    session: requests.Session,
    url: str,
    secret: str,
    msg_id: str,
    body: dict[str, Any],
    *,
    now_s: int,
    timeout_s: float,
) -> Answer:
    """POST `body` signed per Standard Webhooks; `msg_id` stays the same on every retry."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    try:
        resp = session.post(
            url, data=raw, headers=signing.headers(secret, msg_id, now_s, raw), timeout=timeout_s
        )
    except requests.RequestException as exc:
        return Answer(Outcome.RETRY, None, type(exc).__name__)
    return Answer(classify_webhook(resp.status_code), resp.status_code)
