"""Settings of the dispatcher console (env prefix DASHBOARD_, shared DATABASE_URL and MQTT_URL)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.mqtt import DEFAULT_MQTT_URL
from ingest.settings import DEFAULT_DATABASE_URL


class DashboardSettings(BaseSettings):
    """Configuration of `eldercare dashboard`; built by the CLI or a test, never at import."""

    model_config = SettingsConfigDict(
        env_prefix="DASHBOARD_", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        DEFAULT_DATABASE_URL, validation_alias=AliasChoices("database_url", "DATABASE_URL")
    )
    mqtt_url: str = Field(DEFAULT_MQTT_URL, validation_alias=AliasChoices("mqtt_url", "MQTT_URL"))
    # Namespace before the contract's topic root (tests; production leaves it empty).
    topic_prefix: str = ""
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Publish each state change on MQTT (contract §2); off only in tests without a broker.
    mqtt_publish: bool = True
    # Apply the database migrations at start (like the ingest and alerting services).
    migrate_on_start: bool = True
    pool_min_size: int = Field(2, ge=1)
    pool_max_size: int = Field(16, ge=1)
    # Longest statement of a request; the heaviest is a filtered page of the alert list.
    statement_timeout_ms: int = Field(10_000, ge=0)
    # Cookies without the Secure flag, for plain-HTTP development on localhost only.
    insecure_cookies: bool = False
    # A working shift plus handover; an idle session ends earlier (OWASP session management).
    session_ttl_s: int = Field(12 * 3600, gt=0)
    session_idle_s: int = Field(2 * 3600, gt=0)
    # OWASP authentication guidance: throttle after a handful of failures per account and
    # source; 5 failures in 5 minutes per username and IP answer 429.
    login_max_failures: int = Field(5, ge=1)
    login_window_s: int = Field(300, gt=0)
    # Live feed: events a client may have queued before it is dropped (close 1013), and the
    # page size of backlog reads and of the fan-out's reads.
    feed_queue_max: int = Field(1000, ge=1)
    feed_page: int = Field(500, ge=1)
    # The fan-out re-reads the database this often even without a notification, so a
    # notification lost while the listening connection reconnects delays events, never drops.
    feed_poll_s: float = Field(2.0, gt=0)
    # How long a dropped client gets to take its 1013 close frame before the connection is
    # left to the server's keepalive (a client that reads nothing never takes it).
    feed_close_wait_s: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _queue_holds_a_page(self) -> DashboardSettings:
        # The fan-out hands a whole page to every queue before a sender runs again.
        if self.feed_queue_max < 2 * self.feed_page:
            raise ValueError("feed_queue_max must be at least twice feed_page")
        return self
