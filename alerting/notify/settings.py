"""Settings of the notification sender (env prefix NOTIFY_, shared DATABASE_URL)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.settings import DEFAULT_DATABASE_URL


class NotifySettings(BaseSettings):
    """Configuration of `eldercare notify`; built by the CLI, the dashboard or a test."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        DEFAULT_DATABASE_URL, validation_alias=AliasChoices("database_url", "DATABASE_URL")
    )
    # The VAPID private key (RFC 8292), PEM; created once at set-up when the file is missing
    # and kept, since every browser subscription is bound to its public half.
    vapid_key_path: Path = Path("var/notify/vapid_private.pem")
    # Alternatively the key itself (PEM or base64url DER), e.g. from a secret store.
    vapid_private_key: SecretStr | None = None
    # RFC 8292 §2.1 "sub": a contact the push service operator can reach (mailto: or https:).
    vapid_subject: str = "mailto:noc@eldercare.local"
    # RFC 8030 §5.2 TTL: how long a push service keeps an undelivered message; an alert
    # older than this is no longer news to a phone that was off.
    push_ttl_s: int = Field(3600, ge=0)
    # The ladder's wait for a take before the voice-call webhooks ring (issue: 60 s).
    voice_after_s: float = Field(60.0, gt=0)
    # Parallel HTTP requests of the sender.
    workers: int = Field(16, ge=1, le=256)
    # Deliveries claimed per round; a claim leases them for `lease_s`, after which a crashed
    # sender's claims are due again (at least once, same delivery id).
    batch: int = Field(200, ge=1)
    lease_s: float = Field(30.0, gt=0)
    http_timeout_s: float = Field(10.0, gt=0)
    # Retries: exponential back-off from `retry_base_s` up to `retry_cap_s`, with jitter;
    # after `max_attempts` a delivery is failed (and shown in the admin view).
    retry_base_s: float = Field(1.0, gt=0)
    retry_cap_s: float = Field(300.0, gt=0)
    max_attempts: int = Field(10, ge=1)
    # Re-read the stream and the due deliveries at least this often without a notification.
    poll_s: float = Field(1.0, gt=0)
    statement_timeout_ms: int = Field(10_000, ge=0)
    # Push endpoints and webhooks must be https; plain http is accepted for loopback hosts
    # only when this is set (development and tests with local stand-ins).
    allow_http_loopback: bool = False
    # An outbound HTTP(S) proxy for push services and gateways, if the site needs one.
    proxy_url: str | None = None
    # /metrics, /healthz and /readyz (alerting.notify.metrics); None: not served. Bound to
    # metrics_host: loopback unless told otherwise (a scraper in another container needs
    # 0.0.0.0, see docker-compose.yml).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    @field_validator("vapid_subject")
    @classmethod
    def _contact(cls, value: str) -> str:
        if not value.startswith(("mailto:", "https:")):
            raise ValueError("vapid_subject must be a mailto: or https: URI (RFC 8292 §2.1)")
        return value
