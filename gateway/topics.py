"""Topic names of the wire contract, built and parsed."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.contract import DEVICE_ID_RE, TOPIC_ROOT, Channel, ReasonCode
from gateway.errors import PayloadError

_DEVICES = f"{TOPIC_ROOT}/devices/"
_CHANNELS = {c.value: c for c in Channel}


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A parsed device topic."""

    device_id: str
    channel: Channel


def device_topic(device_id: str, channel: Channel | str, prefix: str = "") -> str:
    """Return the topic a device publishes `channel` on.

    Args:
        device_id: the device id.
        channel: telemetry, events or status.
        prefix: an optional namespace put before the contract's root (tests and
            multi-tenant brokers use it; production leaves it empty).
    """
    return f"{prefix}{TOPIC_ROOT}/devices/{device_id}/{Channel(channel).value}"


def device_filter(prefix: str = "", channel: str = "+") -> str:
    """Return the subscription filter matching every device's `channel`."""
    return f"{prefix}{TOPIC_ROOT}/devices/+/{channel}"


def alert_topic(center_id: str, prefix: str = "") -> str:
    """Return the topic alerts routed to `center_id` are published on (contract §2)."""
    return f"{prefix}{TOPIC_ROOT}/alerts/{center_id}"


def alert_filter(prefix: str = "") -> str:
    """Return the subscription filter matching every centre's alert topic."""
    return f"{prefix}{TOPIC_ROOT}/alerts/+"


def parse_device_topic(topic: str, prefix: str = "") -> DeviceTopic:
    """Parse a device topic.

    Raises:
        PayloadError: `bad_topic` when the topic is not a contract device topic.
    """
    # The common case in one pass: prefix, root, a device id without "/", a known channel.
    head = prefix + _DEVICES
    if topic.startswith(head):
        device_id, slash, name = topic[len(head) :].partition("/")
        known = _CHANNELS.get(name)
        if slash and known is not None and DEVICE_ID_RE.fullmatch(device_id):
            return DeviceTopic(device_id, known)
    # Anything else is rejected below, with the reason.
    if not topic.startswith(prefix):
        raise PayloadError(ReasonCode.BAD_TOPIC, "topic outside the configured prefix")
    parts = topic[len(prefix) :].split("/")
    root = TOPIC_ROOT.split("/")
    if len(parts) != len(root) + 3 or parts[: len(root)] != root or parts[len(root)] != "devices":
        raise PayloadError(ReasonCode.BAD_TOPIC, "not eldercare/v1/devices/{device_id}/{channel}")
    device_id, channel = parts[len(root) + 1], parts[len(root) + 2]
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise PayloadError(
            ReasonCode.BAD_TOPIC, "device id does not match ^[a-z0-9][a-z0-9-]{2,63}$"
        )
    try:
        return DeviceTopic(device_id, Channel(channel))
    except ValueError:
        raise PayloadError(ReasonCode.BAD_TOPIC, f"unknown channel {channel[:40]!r}") from None
