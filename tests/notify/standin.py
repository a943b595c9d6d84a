"""Local stand-ins for a push service and for SMS/voice gateways: a tiny HTTP server on
127.0.0.1 that records each request, answers from a script, and can decrypt Web Push."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Decode base64url with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class BrowserKeys:
    """A browser's side of a push subscription (RFC 8291 §2): ECDH key pair, auth secret."""

    private: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def new(cls) -> BrowserKeys:
        """Fresh keys, as `PushManager.subscribe` makes."""
        import os

        return cls(ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    @property
    def p256dh(self) -> str:
        """The public key as the subscription's `keys.p256dh`."""
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(raw)

    def decrypt(self, body: bytes) -> dict[str, Any]:
        """Decrypt an aes128gcm message (RFC 8188/8291) and parse its JSON."""
        plain = http_ece.decrypt(
            body, private_key=self.private, auth_secret=self.auth, version="aes128gcm"
        )
        result: dict[str, Any] = json.loads(plain)
        return result


def verify_vapid(authorization: str, audience: str, now_s: float) -> dict[str, Any]:
    """Check a `vapid t=…, k=…` header (RFC 8292 §3): ES256 signature with the given key,
    `aud` the push service's origin, `exp` within 24 h; returns the claims.

    Raises:
        AssertionError: any check fails.
    """
    assert authorization.startswith("vapid "), authorization
    parts = dict(p.strip().split("=", 1) for p in authorization[6:].split(","))
    token, key_b64 = parts["t"], parts["k"]
    head_b64, claims_b64, sig_b64 = token.split(".")
    header = json.loads(unb64url(head_b64))
    assert header["alg"] == "ES256"
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key_b64))
    sig = unb64url(sig_b64)
    assert len(sig) == 64
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    claims: dict[str, Any] = json.loads(unb64url(claims_b64))
    assert claims["aud"] == audience, claims
    assert now_s < claims["exp"] <= now_s + 24 * 3600 + 60, claims
    assert str(claims["sub"]).startswith(("mailto:", "https:"))
    claims["k"] = key_b64
    return claims


@dataclass
class Received:
    """One request the stand-in got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at_s: float
    status: int


@dataclass
class StandIn:
    """The server's state: what arrived, what to answer next per path."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    default_status: int = 201
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def answer(self, path: str) -> int:
        """The scripted status for the next request to `path`."""
        with self.lock:
            queue = self.script.get(path)
            return queue.pop(0) if queue else self.default_status

    def record(self, item: Received) -> None:
        """Keep a request and wake waiters."""
        with self.arrived:
            self.received.append(item)
            self.arrived.notify_all()

    def to(self, path: str) -> list[Received]:
        """Requests to `path` so far."""
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, n: int = 1, timeout_s: float = 20.0) -> list[Received]:
        """Block until `n` requests reached `path`."""
        deadline = time.monotonic() + timeout_s
        with self.arrived:
            while len([r for r in self.received if r.path == path]) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"{path}: {len(self.to(path))} of {n} requests arrived"
                self.arrived.wait(left)
        return self.to(path)


@contextmanager
def stand_in() -> Iterator[StandIn]:
    """A running stand-in on 127.0.0.1 (a free port)."""
    state = StandIn()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            if state.delay_s:
                time.sleep(state.delay_s)
            status = state.answer(self.path)
            state.record(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                         time.time(), status)
            )  # fmt: skip
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
