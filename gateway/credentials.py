"""Device and service secrets: generation and the broker's password-hash format (pure).

Mosquitto 2.0.x (the broker shipped here, 2.0.11) checks password files written by
`mosquitto_passwd`: `username:$7$<iterations>$<salt b64>$<hash b64>`, PBKDF2-HMAC-SHA512
with a 12-byte salt and a 64-byte key. Argon2id only arrived in later Mosquitto releases,
so the registry keeps exactly this string and the broker files are rendered from it without
the platform ever storing a plaintext secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from pydantic import SecretStr

from gateway.contract import DEVICE_ID_RE

# mosquitto_passwd 2.0 default: 101 iterations (src/password_mosq.h, PW_DEFAULT_ITERATIONS).
# The secrets are 128-bit random tokens, not human passwords, so a slow hash adds nothing
# against guessing while costing the broker CPU on every CONNECT.
DEFAULT_ITERATIONS = 101
SALT_BYTES = 12
SECRET_BYTES = 16
_PREFIX = "$7$"

SERVICE_NAMES = ("ingest", "alerting", "dashboard", "simulator", "hub", "dispatch")


class CredentialError(ValueError):
    """A username or a stored hash that cannot be used."""


@dataclass(frozen=True, slots=True)
class Credential:
    """A freshly issued account: the username and its one-time visible secret."""

    username: str
    password: SecretStr

    def to_json(self) -> str:
        """One line of JSON for an installer (`{"username": …, "password": …}`)."""
        return json.dumps(
            {"username": self.username, "password": self.password.get_secret_value()},
            separators=(",", ":"),
        )

    def qr_line(self, host: str, port: int) -> str:
        """A single line for a QR code: `eldercare-mqtt:<user>:<secret>@<host>:<port>`."""
        return f"eldercare-mqtt:{self.username}:{self.password.get_secret_value()}@{host}:{port}"


def service_username(name: str) -> str:
    """The MQTT username of a platform service (`svc_<name>`, never a valid device id).

    Raises:
        CredentialError: for an unknown service name.
    """
    if name not in SERVICE_NAMES:
        raise CredentialError(f"unknown service {name!r}; one of {', '.join(SERVICE_NAMES)}")
    # The underscore keeps service accounts outside the device id pattern (contract §1).
    return f"svc_{name}"


def check_device_id(device_id: str) -> str:
    """Return `device_id` if it matches the contract's pattern.

    Raises:
        CredentialError: otherwise.
    """
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise CredentialError("device id does not match ^[a-z0-9][a-z0-9-]{2,63}$")
    return device_id


def new_secret(n_bytes: int = SECRET_BYTES) -> SecretStr:
    """A random URL-safe secret of `n_bytes` bytes of entropy."""
    return SecretStr(secrets.token_urlsafe(n_bytes))


def hash_secret(
    secret: SecretStr, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
) -> str:
    """The `$7$` PBKDF2-SHA512 hash Mosquitto 2.0 accepts in a password file."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    key = hashlib.pbkdf2_hmac("sha512", secret.get_secret_value().encode(), salt, iterations)
    b64 = base64.b64encode
    return f"{_PREFIX}{iterations}${b64(salt).decode()}${b64(key).decode()}"


def verify_secret(secret: SecretStr, stored: str) -> bool:
    """Whether `secret` matches a `$7$` hash (constant-time comparison).

    Raises:
        CredentialError: when `stored` is not a `$7$` hash.
    """
    try:
        iterations_text, salt_b64, key_b64 = stored.removeprefix(_PREFIX).split("$")
        salt, key = base64.b64decode(salt_b64), base64.b64decode(key_b64)
        iterations = int(iterations_text)
    except ValueError as exc:
        raise CredentialError("not a $7$ PBKDF2-SHA512 hash") from exc
    if not stored.startswith(_PREFIX):
        raise CredentialError("not a $7$ PBKDF2-SHA512 hash")
    got = hashlib.pbkdf2_hmac("sha512", secret.get_secret_value().encode(), salt, iterations)
    return hmac.compare_digest(got, key)


def issue(username: str) -> tuple[Credential, str]:
    """A new secret for `username` and the hash to store for it."""
    secret = new_secret()
    return Credential(username, secret), hash_secret(secret)
