"""MQTT login and TLS settings shared by every client (env prefix MQTT_).

A service takes its account from `MQTT_USERNAME` plus `MQTT_PASSWORD` or, better,
`MQTT_PASSWORD_FILE` (a file readable only by it), so the secret appears neither in a URL
nor on a command line. `MQTT_CA_FILE` turns TLS on and pins the deployment's CA.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class MqttAuthSettings(BaseSettings):
    """Credentials and TLS material of one MQTT client; built when a client is made."""

    model_config = SettingsConfigDict(env_prefix="MQTT_", extra="ignore")

    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def secret(self) -> SecretStr | None:
        """The password: `password_file`'s first line wins over `password`."""
        if self.password_file is not None:
            text = self.password_file.read_text(encoding="utf-8").strip()
            return SecretStr(text)
        return self.password
