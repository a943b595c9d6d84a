"""Who is told what about one alert event, by which channel and when (pure).

The ladder (the platform's answer to push services that mainland China cannot reach and to
iOS, which pushes only to installed web apps): a critical alert goes at once by Web Push and
by every message webhook (SMS or WeChat gateways), and its voice-call webhooks are planned
for `voice_after_ms` later; the sender drops them if the family or the centre took it first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alerting.notify.policy import GOING_NOTE, Channel, Prefs, in_quiet_hours, is_critical


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A registered webhook: its id and whether it places a voice call."""

    id: int
    voice: bool = False


@dataclass(frozen=True, slots=True)
class Recipient:
    """A family member linked to the alert's elder, with where to reach them."""

    user_id: int
    username: str
    prefs: Prefs = field(default_factory=Prefs)
    subscriptions: tuple[int, ...] = ()
    webhooks: tuple[WebhookTarget, ...] = ()


@dataclass(frozen=True, slots=True)
class Event:
    """One alert_transitions row with the alert as it is now."""

    event_id: int
    from_status: str | None
    to_status: str
    note: str
    actor: str
    user_id: int | None
    at_ts: int
    alert: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Planned:
    """A notification to store in the outbox."""

    key: str
    state_key: str
    channel: Channel
    target_id: int
    user_id: int | None
    center_id: str | None
    urgent: bool
    due_ts: int


def state_key(event: Event, family_ids: frozenset[int]) -> str | None:
    """What the event tells the family: a new state, a member on the way, or nothing.

    Notes, handovers and repeated escalation ticks keep the status and are not news.
    """
    if event.from_status is None:
        return "open"
    if event.from_status != event.to_status:
        return event.to_status
    if event.note == GOING_NOTE and event.user_id in family_ids:
        return f"going:{event.actor}"
    return None


def plan(
    event: Event,
    family: Sequence[Recipient],
    center_webhooks: Sequence[WebhookTarget],
    now_ms: int,
    voice_after_ms: int,
) -> list[Planned]:
    """The notifications of one event.

    Args:
        event: the transition and the alert's current fields.
        family: members linked to the alert's elder.
        center_webhooks: webhooks of the centre the alert is routed to.
        now_ms: platform clock.
        voice_after_ms: how long after the raise the voice call waits for a take (60 s).
    """
    key = state_key(event, frozenset(r.user_id for r in family))
    if key is None:
        return []
    alert = event.alert
    critical = is_critical(str(alert["kind"]), str(alert["severity"]))
    base = f"{alert['alert_id']}|{key}"
    out: list[Planned] = []
    voice_ts = int(alert["raised_ts"]) + voice_after_ms
    ring = critical and key == "open"

    def add(channel: Channel, target: int, user: int | None, due: int) -> None:
        center = None if user is not None else str(alert["center_id"])
        out.append(
            Planned(
                f"{base}|{channel.value}|{target}",
                key,
                channel,
                target,
                user,
                center,
                critical,
                due,
            )
        )

    for person in family:
        if key.startswith("going:") and person.user_id == event.user_id:
            continue  # the one who is going knows
        if not critical and (
            str(alert["kind"]) not in person.prefs.kinds or in_quiet_hours(person.prefs, now_ms)
        ):
            continue
        for sub in person.subscriptions:
            add(Channel.PUSH, sub, person.user_id, now_ms)
        for hook in person.webhooks:
            if not hook.voice:
                add(Channel.WEBHOOK, hook.id, person.user_id, now_ms)
            elif ring:
                add(Channel.VOICE, hook.id, person.user_id, max(voice_ts, now_ms))
    for hook in center_webhooks:
        if not hook.voice:
            add(Channel.WEBHOOK, hook.id, None, now_ms)
        elif ring:
            add(Channel.VOICE, hook.id, None, max(voice_ts, now_ms))
    return out


def voice_still_needed(status: str, acked_ts: int | None, going: bool) -> bool:
    """Whether a due voice call still has to ring: nobody took the alert and nobody is going."""
    return status in ("open", "escalated") and acked_ts is None and not going
