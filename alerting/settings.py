"""Settings of the alerting service (env prefix ALERTING_, shared DATABASE_URL and MQTT_URL)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerting.mqtt import URGENT_KEEPALIVE_S
from alerting.partition import MAX_PARTITIONS
from gateway.contract import Severity
from gateway.mqtt import DEFAULT_MQTT_URL
from ingest.settings import DEFAULT_DATABASE_URL


class AlertingSettings(BaseSettings):
    """Configuration of `eldercare alerting` and the alert CLI."""

    model_config = SettingsConfigDict(env_prefix="ALERTING_", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        DEFAULT_DATABASE_URL, validation_alias=AliasChoices("database_url", "DATABASE_URL")
    )
    mqtt_url: str = Field(DEFAULT_MQTT_URL, validation_alias=AliasChoices("mqtt_url", "MQTT_URL"))
    topic_prefix: str = ""
    client_id: str = "eldercare-alerting"
    share_group: str = "alerting"
    # A persistent session keeps QoS 1 messages queued across a restart (MQTT 5 §3.1.2.11.2).
    session_expiry_s: int = 3600
    # MQTT keep alive of the session for events and statuses, s; 0: off. A broker that hangs
    # with its sockets open makes the service unready within two intervals (alerting.mqtt).
    urgent_keepalive_s: int = Field(URGENT_KEEPALIVE_S, ge=0, le=65535)
    # Default escalation deadlines: 60 s is the telecare answer-time standard for critical calls.
    escalate_critical_s: float = 60.0
    escalate_high_s: float = 120.0
    escalate_medium_s: float = 300.0
    escalate_low_s: float = 900.0
    reminder_s: float | None = None
    tick_s: float = 0.5
    centers_reload_s: float = 5.0
    # How often the registry's version is polled (alerting.fleet_reload); a load only on change.
    fleet_reload_s: float = Field(default=10.0, gt=0)
    catchup_s: float = 900.0
    sos_grace_s: float = 30.0
    will_grace_s: float = 60.0
    fall_model_path: str | None = None
    baseline_days: int = 14

    # Where alerts raised while PostgreSQL is down are kept until it returns (alerting.outbox);
    # empty: $XDG_STATE_HOME (~/.local/state)/eldercare/alerting-outbox-{client_id}.sqlite3.
    outbox_path: str = ""
    # Messages in flight from the broker (MQTT 5 Receive Maximum) and in the inbox: beyond
    # it the broker holds the backlog, so memory stays flat however far behind the service is.
    inbox_size: int = 1000
    # /metrics, /healthz and /readyz; None: not served. Bound to metrics_host: loopback unless
    # told otherwise (a scraper in another container needs 0.0.0.0, see docker-compose.yml).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # A statement unanswered this long counts as a database outage (alerting.writer): a
    # network partition pages from the outbox after this, not after TCP's ~20 s. None: off.
    db_deadline_s: float | None = 5.0

    # Active/standby (alerting.leader): only the holder of a PostgreSQL advisory lock acts.
    # false: the process acts without the lock (only when no other process acts for its
    # partition: nothing then stops two from handling the same elders).
    standby: bool = True
    # None: a key derived from the schema and the topic prefix (one lock per deployment).
    standby_lock_key: int | None = None
    # How often the standby tries the lock and the active probes it: failover in ~1 poll.
    standby_poll_s: float = 1.0
    # Start-up warm-up of learned state (alerting.warmup): heart-rate history per band.
    warmup_anomaly_h: float = 24.0
    # Readings per band loaded at start: a day of fixes, enough for the anomaly model to judge
    # from its first message (detectors.anomaly.MIN_BAND_SAMPLES per cadence band).
    warmup_anomaly_samples: int = 250
    # false under a least-privilege database role: `eldercare db migrate` runs the DDL.
    migrate_on_start: bool = True

    # Partitions (alerting.partition): this process handles the elders whose id hashes to
    # `partition` of `partitions`, with its own broker session, outbox and lock (an active
    # and a standby per partition). 1: the whole district (the default).
    partitions: int = Field(1, ge=1, le=MAX_PARTITIONS)
    partition: int = Field(0, ge=0)
    # `eldercare alerting` starts this many partition processes and supervises them
    # (alerting.workers); 1: the service runs in the command's own process.
    workers: int = Field(1, ge=1, le=64)

    @model_validator(mode="after")
    def _partition_in_range(self) -> AlertingSettings:
        if self.partition >= self.partitions:
            raise ValueError(
                f"ALERTING_PARTITION={self.partition} needs ALERTING_PARTITIONS > {self.partition}"
            )
        return self

    def deadlines_s(self) -> dict[Severity, float]:
        """Escalation deadline per severity, in seconds."""
        return {
            Severity.CRITICAL: self.escalate_critical_s,
            Severity.HIGH: self.escalate_high_s,
            Severity.MEDIUM: self.escalate_medium_s,
            Severity.LOW: self.escalate_low_s,
        }
