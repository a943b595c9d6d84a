"""Family notifications: Web Push, signed webhooks and the voice-call ladder for alerts."""

from alerting.notify.planner import Recipient, WebhookTarget, plan
from alerting.notify.signing import sign, verify

__all__ = ["Recipient", "WebhookTarget", "plan", "sign", "verify"]
