"""The VAPID key pair (RFC 8292): created once, kept in a file, its public half for browsers."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02  # type: ignore[import-untyped]

from alerting.notify.settings import NotifySettings

logger = logging.getLogger(__name__)


def create_key_file(path: Path) -> bool:
    """Write a new P-256 private key to `path` unless one exists; True when created.

    The file is created exclusively with mode 0600, so two processes starting together keep
    one key (the loser reads the winner's).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Vapid02()
    key.generate_keys()
    pem = key.private_pem()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    logger.info("notify: created the VAPID key %s", path)
    return True


def load_key(settings: NotifySettings) -> Vapid02:
    """The VAPID key of the settings: inline when given, else the file (created if missing)."""
    if settings.vapid_private_key is not None:
        text = settings.vapid_private_key.get_secret_value()
        if "BEGIN" in text:
            return Vapid02.from_pem(text.encode())
        return Vapid02.from_string(text)
    path = settings.vapid_key_path
    if not path.exists():
        create_key_file(path)
    for _ in range(50):  # another process may be writing the file it just created
        with contextlib.suppress(ValueError):
            return Vapid02.from_file(str(path))
        time.sleep(0.02)
    return Vapid02.from_file(str(path))


def public_key_b64(key: Vapid02) -> str:
    """The application server key: the uncompressed P-256 point, base64url without padding."""
    raw = key.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
