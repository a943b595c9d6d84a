"""Standard Webhooks signatures (pure): HMAC-SHA256 over "id.timestamp.body".

See the Standard Webhooks specification (standardwebhooks.com): headers `webhook-id`,
`webhook-timestamp` (seconds) and `webhook-signature` ("v1,<base64 HMAC>", space-separated
when several), secrets "whsec_<base64 key>".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
# The specification's suggested tolerance against replays: five minutes either way.
TOLERANCE_S = 300


def new_secret() -> str:
    """A fresh signing secret (24 random bytes, within the spec's 24-64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(raw)


def sign(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """The `webhook-signature` header value of one message."""
    content = f"{msg_id}.{timestamp_s}.".encode() + body
    mac = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers plus the content type."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": sign(secret, msg_id, timestamp_s, body),
        "content-type": "application/json",
    }


def verify(
    secret: str, msg_id: str, timestamp_s: str, signature: str, body: bytes, now_s: int
) -> bool:
    """Whether a received message is authentic and within the timestamp tolerance."""
    try:
        ts = int(timestamp_s)
    except ValueError:
        return False
    if abs(now_s - ts) > TOLERANCE_S:
        return False
    expected = sign(secret, msg_id, ts, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signature.split(" "))
