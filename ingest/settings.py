"""Settings of the ingest service: env prefix INGEST_, plus the shared DATABASE_URL and MQTT_URL."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.mqtt import CONSUMER_KEEPALIVE_S, DEFAULT_MQTT_URL

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class WriteMethod(StrEnum):
    """How a batch reaches the tables."""

    # Binary COPY into a temp table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING.
    COPY = "copy"
    UNNEST = "unnest"  # INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING


class IngestSettings(BaseSettings):
    """Everything the consumer needs; built by the command line, never at import time."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("DATABASE_URL", "INGEST_DATABASE_URL"),
    )
    mqtt_url: str = Field(
        default=DEFAULT_MQTT_URL, validation_alias=AliasChoices("MQTT_URL", "INGEST_MQTT_URL")
    )
    topic_prefix: str = ""
    # Empty: a plain (non-shared) subscription, see ingest.mqtt.share_filter.
    share_group: str = "ingest"
    client_id: str = "eldercare-ingest"
    # MQTT 5 §3.1.2.11.2: the broker keeps the session (and unacknowledged messages) this long.
    session_expiry_s: int = Field(default=3600, ge=0)
    # MQTT 5 §3.1.2.11.3 Receive Maximum: unacknowledged QoS 1 messages the broker may send us.
    receive_maximum: int = Field(default=4000, ge=1, le=65535)
    # MQTT keep alive; 0 (off) by default: a full queue stops ingest reading, and a broker
    # would drop a connection silent for 1.5 x the interval with the QoS 0 messages queued
    # for it. A dead broker is found by TCP keepalive instead (gateway.mqtt).
    keepalive_s: int = Field(default=CONSUMER_KEEPALIVE_S, ge=0)
    batch_max: int = Field(default=2000, ge=1)
    batch_wait_ms: int = Field(default=100, ge=1)
    # A batch closes early after this long without a new message (see IngestService._collect).
    batch_idle_ms: int = Field(default=5, ge=1)
    # Received messages waiting for the consumer before paho's thread stops reading (the inbox
    # then holds at most this plus one read batch, gateway.mqtt.READ_BATCH).
    queue_max: int = Field(default=8000, ge=1)
    write_method: WriteMethod = WriteMethod.COPY
    registry_refresh_s: float = Field(default=60.0, gt=0)
    # Unknown devices trigger a registry reload at most this often (a newly imported fleet).
    registry_miss_refresh_s: float = Field(default=5.0, gt=0)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    flush_timeout_s: float = Field(default=10.0, gt=0)
    # A device ts older than the receive time minus this goes to `misdated_messages` instead of
    # the partitioned series (ingest.batch.MAX_BACKDATE_MS: the shortest retention, 30 days).
    max_backdate_days: float = Field(default=30.0, gt=0, le=30.0)
    # /metrics; None: not served. Bound to metrics_host: loopback unless told otherwise (a
    # scraper in another container needs 0.0.0.0, see docker-compose.yml).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # CPU priority (nice 0-19) of every ingest thread. Storage is lossless and may lag (the
    # broker holds the backlog, QoS 1); alerting, the console and PostgreSQL may not, so on a
    # shared host ingest yields the CPU to them when it is short (docs/scaling.md, measured).
    nice: int = Field(default=10, ge=0, le=19)
    # TimescaleDB's background jobs are read for /metrics at most this often (ingest.metrics).
    jobs_refresh_s: float = Field(default=60.0, gt=0)
