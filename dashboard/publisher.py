"""Publishes each alert state change made in the console on MQTT (contract §2); I/O only."""

from __future__ import annotations

import logging
import threading
import uuid

from alerting.lifecycle import AlertRow
from gateway.alerts import encode_alert
from gateway.mqtt import make_client, parse_mqtt_url
from gateway.topics import alert_topic

logger = logging.getLogger(__name__)

# Bounded while the broker is away: paho keeps QoS 1 messages for resending until then.
_MAX_QUEUED = 10_000


class AlertPublisher:
    """A paho client started with the app; `publish` never blocks a request."""

    def __init__(self, mqtt_url: str, prefix: str, client_id: str | None = None) -> None:
        self.prefix = prefix
        self.address = parse_mqtt_url(mqtt_url)
        self.client = make_client(
            client_id or f"eldercare-dashboard-{uuid.uuid4().hex[:8]}", address=self.address
        )
        self.client.max_queued_messages_set(_MAX_QUEUED)

    def start(self) -> None:
        """Connect in the background (the app starts even while the broker is down)."""
        self.client.connect_async(self.address.host, self.address.port, keepalive=30)
        self.client.loop_start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Disconnect and stop the network thread, waiting at most `timeout_s`.

        paho's `loop_stop` joins its thread without a timeout, and that thread keeps looping
        while QoS 1 messages wait for their PUBACK; the join runs in a daemon thread of its
        own so that a stuck network thread (a daemon too) never holds up the caller.

        Returns:
            Whether the network thread ended in time.
        """
        self.client.disconnect()
        stopper = threading.Thread(target=self.client.loop_stop, name="mqtt-stop", daemon=True)
        stopper.start()
        stopper.join(timeout_s)
        if stopper.is_alive():
            logger.warning("MQTT network thread still running %.1f s after stop", timeout_s)
            return False
        return True

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return bool(self.client.is_connected())

    def publish(self, alert: AlertRow) -> None:
        """Queue the alert's current state on its centre's topic (QoS 1)."""
        info = self.client.publish(
            alert_topic(alert.center_id, self.prefix), encode_alert(alert.to_message()), qos=1
        )
        if info.rc != 0:
            logger.warning("alert %s not queued for MQTT (rc %s)", alert.alert_id, info.rc)
