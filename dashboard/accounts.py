"""Accounts (pure): roles, the signed-in user, password hashing, tokens and visibility rules."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

USERNAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")
# Names the platform writes into alert histories itself; an account may not take them.
RESERVED_USERNAMES = frozenset({"system"})
MIN_PASSWORD_LEN = 8  # NIST SP 800-63B §5.1.1.2: at least 8 characters for a memorised secret

# argon2-cffi's defaults are RFC 9106's second recommended profile for Argon2id
# (t=3, m=64 MiB, p=4).
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Verified against for unknown usernames, so the answer takes as long as for a known one.
    return _HASHER.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    """What an account may see and do."""

    ADMIN = "admin"
    DISPATCHER = "dispatcher"
    FAMILY = "family"


class Outcome(StrEnum):
    """How an alert was closed (required to resolve)."""

    FALSE_ALARM = "false_alarm"
    HANDLED_BY_PHONE = "handled_by_phone"
    VISIT = "visit"
    AMBULANCE = "ambulance"
    FIRE_SERVICE = "fire_service"
    NO_ANSWER_ESCALATED = "no_answer_escalated"
    NUISANCE = "nuisance"
    DEVICE_FAULT = "device_fault"


class Step(StrEnum):
    """Procedure-card steps: talk to the elder, call back, key-holders, visit, 120/119."""

    TALK = "talk"
    CALL_BACK = "call_back"
    KEY_HOLDERS = "key_holders"
    VISIT = "visit"
    EMERGENCY = "emergency"


@dataclass(frozen=True, slots=True)
class User:
    """A signed-in account (with its session's CSRF token when from a request)."""

    id: int
    username: str
    display_name: str
    role: Role
    center_id: str | None
    elder_ids: tuple[str, ...]
    language: str
    csrf_token: str = ""
    session_hash: bytes = b""

    def sees_elder(self, elder_id: str) -> bool:
        """Whether this account may see anything of `elder_id` (families: linked elders only)."""
        return self.role is not Role.FAMILY or elder_id in self.elder_ids

    def acts_for(self, center_id: str) -> bool:
        """Whether this account may act on an alert routed to `center_id`."""
        if self.role is Role.ADMIN:
            return True
        return self.role is Role.DISPATCHER and self.center_id == center_id


def check_username(username: str) -> str:
    """Return `username` when valid.

    Raises:
        ValueError: not 2-32 characters of a-z, 0-9, `_`, `.`, `-` starting with a letter,
            or reserved.
    """
    if not USERNAME_RE.fullmatch(username) or username in RESERVED_USERNAMES:
        raise ValueError(
            "username must be 2-32 of a-z 0-9 _ . - starting with a letter, and not reserved"
        )
    return username


def hash_password(password: str) -> str:
    """Argon2id hash of `password` in PHC string format.

    Raises:
        ValueError: shorter than MIN_PASSWORD_LEN.
    """
    if len(password) < MIN_PASSWORD_LEN:
        raise ValueError(f"password must have at least {MIN_PASSWORD_LEN} characters")
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether `password` matches `stored_hash` (None: an unknown user, verified at equal cost)."""
    try:
        return _HASHER.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A random token (256 bits, URL-safe) for a session cookie or a CSRF token."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    """What is stored of a session token: its SHA-256."""
    return hashlib.sha256(token.encode()).digest()


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token."""
    return bool(expected) and given is not None and hmac.compare_digest(expected, given)
