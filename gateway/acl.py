"""Mosquitto password and ACL files generated from the registry's accounts (pure).

Access control uses Mosquitto's password file plus ACL file, reloaded with SIGHUP, rather
than the dynamic-security plugin that 2.0.11 also ships: the registry keeps only PBKDF2
hashes, and the password file takes those hashes as they are, whereas dynamic security's
`createClient`/`setClientPassword` commands need each plaintext secret again. On SIGHUP
Mosquitto 2.0 re-reads both files and disconnects connected clients whose account is gone
(`mosquitto_security_apply`), while every other client keeps its connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from gateway.contract import TOPIC_ROOT, Channel

# Contract preamble: every payload is at most 16 KiB. A PUBLISH packet adds a fixed header
# (≤ 5 bytes), the topic (2 + ≤ ~150 bytes with a prefix), a packet id and MQTT 5 properties;
# 512 bytes of headroom admit every valid message and refuse a 17 KiB one (MQTT 5 §3.1.2.11.4).
MAX_PAYLOAD_BYTES = 16 * 1024
MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 512
# Per-client queue bound in bytes for a consumer that is restarting (ingest and alerting keep
# persistent sessions): ~1,000,000 typical 250-byte messages, minutes of a whole district, and
# at most ~16,000 maximum-size ones, so a flood cannot grow the broker without bound.
# Devices subscribe to nothing, so their queues stay empty.
MAX_QUEUED_BYTES = 256 * 1024 * 1024
MAX_QUEUED_MESSAGES = 1_000_000


class AccountKind(StrEnum):
    """Who an MQTT account belongs to."""

    DEVICE = "device"
    SERVICE = "service"
    CENTER = "center"
    HUB = "hub"


@dataclass(frozen=True, slots=True)
class Account:
    """One active MQTT account as the broker needs it.

    Attributes:
        username: the MQTT username (a device id, `svc_<name>` or `center_<id>`).
        kind: device, service or care-centre account.
        subject: the device id, the service name or the care-centre id.
        password_hash: the `$7$` PBKDF2-SHA512 hash (gateway.credentials).
        devices: for a home hub (subject: the elder id), the devices registered to that elder.
    """

    username: str
    kind: AccountKind
    subject: str
    password_hash: str
    devices: tuple[str, ...] = ()


# What each platform service may do, topics relative to `{prefix}eldercare/v1/`.
# Readers need `read` for SUBSCRIBE and delivery; alerting and the dashboard publish alerts.
_SERVICE_RIGHTS: dict[str, tuple[tuple[str, str], ...]] = {
    "ingest": (("read", "devices/+/+"),),
    "alerting": (("read", "devices/+/+"), ("readwrite", "alerts/+")),
    "dashboard": (("read", "devices/+/+"), ("readwrite", "alerts/+"), ("read", "hubs/+/status")),
    "dispatch": (("read", "alerts/+"),),
    "simulator": (("write", "devices/+/+"), ("read", "alerts/+")),
}


def _root(prefix: str) -> str:
    return f"{prefix}{TOPIC_ROOT}"


def account_rules(account: Account, prefix: str = "") -> list[str]:
    """The ACL lines (`topic <access> <filter>`) one account gets."""
    root = _root(prefix)
    if account.kind is AccountKind.DEVICE:
        # Contract §1: a device publishes only under its own id, on the three channels.
        return [f"topic write {root}/devices/{account.subject}/{c.value}" for c in Channel]
    if account.kind is AccountKind.CENTER:
        return [f"topic read {root}/alerts/{account.subject}"]
    if account.kind is AccountKind.HUB:
        # A home hub speaks for exactly the devices registered to its elder, and reports
        # itself on its own status topic (gateway.hub).
        own = [f"topic write {root}/hubs/{account.subject}/status"]
        return own + [
            f"topic write {root}/devices/{d}/{c.value}"
            for d in sorted(account.devices)
            for c in Channel
        ]
    rights = _SERVICE_RIGHTS.get(account.subject, ())
    return [f"topic {access} {root}/{rel}" for access, rel in rights]


def render_passwd(accounts: list[Account]) -> str:
    """The password file: `username:$7$…` per active account, sorted for stable output."""
    lines = sorted(f"{a.username}:{a.password_hash}" for a in accounts)
    return "".join(f"{line}\n" for line in lines)


def render_acl(accounts: list[Account], prefix: str = "") -> str:
    """The ACL file: a `user` block per account; anything not listed is denied."""
    blocks = ["# Generated from the registry by `eldercare gateway acl sync`; edits are lost.\n"]
    for account in sorted(accounts, key=lambda a: a.username):
        rules = "".join(f"{rule}\n" for rule in account_rules(account, prefix))
        blocks.append(f"user {account.username}\n{rules}")
    return "\n".join(blocks)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the broker's TLS material lives (gateway.certs writes them)."""

    ca_path: Path
    cert_path: Path
    key_path: Path
    require_client_cert: bool = False


def render_conf(
    out_dir: Path,
    *,
    port: int = 1883,
    bind: str = "127.0.0.1",
    tls: TlsFiles | None = None,
    tls_port: int = 8883,
    tls_bind: str = "",
    run_as: str | None = None,
) -> str:
    """A complete `mosquitto.conf` with auth on, for files in `out_dir`.

    Args:
        out_dir: where `passwd`, `acl` and the persistence database live.
        port: the plain listener, on `bind` (localhost only unless told otherwise).
        bind: the address of the plain listener.
        tls: the TLS material for a second listener on `tls_port`, or None.
        tls_port: the TLS listener port (8883, IANA's secure-mqtt).
        tls_bind: the TLS listener address (empty: every interface).
        run_as: the `user` Mosquitto drops to when started as root (None: its default).
    """
    d = out_dir.resolve()
    lines = ["# Generated by `eldercare gateway broker-config`."]
    if run_as:
        lines.append(f"user {run_as}")
    lines += [
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {d}/passwd",
        f"acl_file {d}/acl",
        f"max_packet_size {MAX_PACKET_BYTES}",
        "max_inflight_messages 4000",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        # QoS 0 telemetry waits for a reconnecting persistent session (mosquitto.conf(5)).
        "queue_qos0_messages true",
        "set_tcp_nodelay true",
        "persistence true",
        f"persistence_location {d}/",
        "autosave_interval 30",
        "persistent_client_expiration 7d",
        f"pid_file {d}/mosquitto.pid",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages false",
        f"listener {port} {bind}".rstrip(),
    ]
    if tls is not None:
        lines += [
            f"listener {tls_port} {tls_bind}".rstrip(),
            f"cafile {tls.ca_path.resolve()}",
            f"certfile {tls.cert_path.resolve()}",
            f"keyfile {tls.key_path.resolve()}",
            "tls_version tlsv1.2",
            f"require_certificate {'true' if tls.require_client_cert else 'false'}",
        ]
    return "\n".join(lines) + "\n"
