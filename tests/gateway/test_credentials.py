"""Secrets and their hashes in the format Mosquitto 2.0's `mosquitto_passwd` writes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from gateway.credentials import (
    CredentialError,
    check_device_id,
    hash_secret,
    issue,
    service_username,
    verify_secret,
)


def test_a_hash_written_by_mosquitto_passwd_verifies(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(path), "dev-1", "s3cret"], check=True)
    stored = path.read_text(encoding="utf-8").strip().split(":", 1)[1]
    assert verify_secret(SecretStr("s3cret"), stored)
    assert not verify_secret(SecretStr("s3cret!"), stored)


def test_our_hash_has_mosquittos_layout_and_verifies() -> None:
    stored = hash_secret(SecretStr("abc"), salt=b"\x00" * 12)
    assert stored.startswith("$7$101$AAAAAAAAAAAAAAAA$")
    assert verify_secret(SecretStr("abc"), stored)
    assert hash_secret(SecretStr("abc")) != hash_secret(SecretStr("abc"))  # salted


def test_issued_secrets_are_random_and_only_shown_on_purpose() -> None:
    first, first_hash = issue("btn-0001")
    second, _ = issue("btn-0001")
    secret = first.password.get_secret_value()
    assert secret != second.password.get_secret_value() and len(secret) >= 20
    assert secret not in repr(first) and secret not in str(first.password)
    assert json.loads(first.to_json()) == {"username": "btn-0001", "password": secret}
    assert first.qr_line("mqtt.example", 8883).endswith(f":{secret}@mqtt.example:8883")
    assert verify_secret(first.password, first_hash)
    assert secret not in first_hash


@pytest.mark.parametrize("bad", ["BTN-1", "ab", "-abc", "a/b+c", "x" * 65], ids=str)
def test_device_ids_outside_the_contract_are_refused(bad: str) -> None:
    with pytest.raises(CredentialError):
        check_device_id(bad)


def test_service_accounts_cannot_collide_with_device_ids() -> None:
    name = service_username("ingest")
    with pytest.raises(CredentialError):
        check_device_id(name)
    with pytest.raises(CredentialError):
        service_username("root")


def test_a_malformed_hash_is_an_error() -> None:
    with pytest.raises(CredentialError):
        verify_secret(SecretStr("x"), "$6$abc")
