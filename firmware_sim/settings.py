"""Settings of the simulator (env prefix SIM_, plus the shared MQTT_URL)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.mqtt import DEFAULT_MQTT_URL


class SimSettings(BaseSettings):
    """Simulator configuration; built by the CLI, never at import time."""

    model_config = SettingsConfigDict(env_prefix="SIM_", extra="ignore")

    mqtt_url: str = Field(
        DEFAULT_MQTT_URL, validation_alias=AliasChoices("MQTT_URL", "SIM_MQTT_URL")
    )
    prefix: str = ""
    seed: int = 0
    speed: float = 1.0
    pooled: int = 0
    progress_s: float = 5.0
