"""Pure cores of the notifier: critical kinds, quiet hours, back-off, the plan, signatures."""

from __future__ import annotations

import datetime as dt
import json
import random
from zoneinfo import ZoneInfo

import pytest

from alerting.notify.planner import Event, Recipient, WebhookTarget, plan, voice_still_needed
from alerting.notify.policy import Channel, Prefs, backoff_ms, in_quiet_hours, push_payload
from alerting.notify.signing import new_secret, sign, verify

SH = ZoneInfo("Asia/Shanghai")


def _ms(hour: int, minute: int = 0, tz: ZoneInfo = SH) -> int:
    return int(dt.datetime(2026, 11, 29, hour, minute, tzinfo=tz).timestamp() * 1000)


@pytest.mark.parametrize(
    ("quiet", "at", "expected"),
    [
        (("22:00", "07:00"), (23, 30), True),
        (("22:00", "07:00"), (6, 59), True),
        (("22:00", "07:00"), (7, 0), False),
        (("22:00", "07:00"), (12, 0), False),
        (("13:00", "14:00"), (13, 30), True),
        (("13:00", "14:00"), (14, 0), False),
        ((None, None), (3, 0), False),
    ],
    ids=["wrap-late", "wrap-early", "wrap-end", "wrap-day", "nap", "nap-end", "none"],
)
def test_quiet_hours_in_local_time(
    quiet: tuple[str | None, str | None], at: tuple[int, int], expected: bool
) -> None:
    prefs = Prefs(quiet_from=quiet[0], quiet_to=quiet[1])
    assert in_quiet_hours(prefs, _ms(*at)) is expected


def test_quiet_hours_follow_the_persons_time_zone() -> None:
    # 23:30 in Beijing is 16:30 in Berlin (winter): quiet for one, not for the other.
    now = _ms(23, 30)
    assert in_quiet_hours(Prefs(quiet_from="22:00", quiet_to="07:00"), now)
    berlin = Prefs(quiet_from="22:00", quiet_to="07:00", time_zone="Europe/Berlin")
    assert not in_quiet_hours(berlin, now)


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    rng = random.Random(7)
    for attempts, ceiling_s in ((1, 1), (2, 2), (3, 4), (6, 32), (12, 300)):
        delays = [backoff_ms(attempts, 1.0, 300.0, rng) for _ in range(200)]
        assert min(delays) >= ceiling_s * 500 and max(delays) <= ceiling_s * 1000
        assert len(set(delays)) > 50  # jittered, not one fixed value


ALERT = {
    "alert_id": "al-1", "kind": "sos", "severity": "critical", "status": "open",
    "elder_id": "el-1", "device_id": "btn-1", "center_id": "cc-a", "event_ts": 1,
    "raised_ts": 1_000_000, "updated_ts": 1, "acked_ts": None, "closed_ts": None,
    "taken_by": None, "elder_name": "王秀兰",
}  # fmt: skip


def _event(from_status: str | None, to_status: str, note: str = "", **alert: object) -> Event:
    return Event(7, from_status, to_status, note, "system", None, 1, {**ALERT, **alert})


QUIET_NOW = Prefs(quiet_from="00:00", quiet_to="23:59")


def test_critical_goes_by_every_channel_and_rings_after_the_wait() -> None:
    fam = [Recipient(1, "a", QUIET_NOW, (11, 12), (WebhookTarget(5), WebhookTarget(6, True)))]
    out = plan(_event(None, "open"), fam, [WebhookTarget(9), WebhookTarget(10, True)],
               now_ms=1_000_100, voice_after_ms=60_000)  # fmt: skip
    by = {(p.channel, p.target_id): p for p in out}
    assert set(by) == {
        (Channel.PUSH, 11), (Channel.PUSH, 12), (Channel.WEBHOOK, 5), (Channel.VOICE, 6),
        (Channel.WEBHOOK, 9), (Channel.VOICE, 10),
    }  # fmt: skip
    assert by[(Channel.PUSH, 11)].due_ts == 1_000_100 and by[(Channel.PUSH, 11)].urgent
    assert by[(Channel.VOICE, 6)].due_ts == 1_060_000  # raised + 60 s
    assert by[(Channel.WEBHOOK, 9)].user_id is None and by[(Channel.WEBHOOK, 9)].center_id == "cc-a"
    assert len({p.key for p in out}) == len(out)


def test_non_critical_respects_kinds_and_quiet_hours_and_never_rings() -> None:
    low = {"kind": "low_battery", "severity": "low"}
    wants = Recipient(1, "a", Prefs(), (11,), (WebhookTarget(6, True),))
    quiet = Recipient(2, "b", QUIET_NOW, (21,))
    no_kind = Recipient(3, "c", Prefs(kinds=frozenset({"sos"})), (31,))
    out = plan(_event(None, "open", **low), [wants, quiet, no_kind], [], 5, 60_000)
    assert [(p.channel, p.target_id, p.urgent) for p in out] == [(Channel.PUSH, 11, False)]


@pytest.mark.parametrize(
    ("from_status", "to_status", "note", "user_id", "key"),
    [
        (None, "open", "", None, "open"),
        ("open", "acknowledged", "taken", 99, "acknowledged"),
        ("escalated", "escalated", "re-routed", None, None),
        ("open", "open", "a note", 99, None),
        ("open", "open", "going", 2, "going:b"),
        ("open", "open", "going", 99, None),  # a dispatcher's note saying "going" is a note
        ("acknowledged", "resolved", "visit", 99, "resolved"),
    ],
    ids=["raise", "take", "tick", "note", "going", "going-not-family", "all-clear"],
)
def test_state_keys_collapse_ticks_and_notes(
    from_status: str | None, to_status: str, note: str, user_id: int | None, key: str | None
) -> None:
    fam = [Recipient(1, "a", Prefs(), (11,)), Recipient(2, "b", Prefs(), (21,))]
    event = Event(7, from_status, to_status, note, "b" if user_id == 2 else "x", user_id, 1, ALERT)
    out = plan(event, fam, [], 5, 60_000)
    assert {p.state_key for p in out} == ({key} if key else set())
    if key == "going:b":  # the member who is going is not told of it
        assert [p.target_id for p in out] == [11]


def test_voice_is_needed_only_while_nobody_took_it() -> None:
    assert voice_still_needed("open", None, False)
    assert voice_still_needed("escalated", None, False)
    assert not voice_still_needed("acknowledged", 5, False)
    assert not voice_still_needed("escalated", 5, False)  # taken once, then re-routed
    assert not voice_still_needed("open", None, True)
    assert not voice_still_needed("resolved", None, False)


def test_push_payload_is_small_and_has_no_position() -> None:
    alert = {**ALERT, "lat": 39.9, "lon": 116.3, "reason": "x" * 5000, "elder_name": "名" * 40}
    body = push_payload(alert, "open", 123, "r" * 22, None)
    assert not {"lat", "lon", "reason", "distance_m"} & body.keys()
    assert len(json.dumps(body).encode()) < 3072


def test_standard_webhooks_signature_vector() -> None:
    # The example of the Standard Webhooks reference libraries' test suites.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig, body, 1614265400)
    assert not verify(new_secret(), "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig, body,
                      1614265400)  # fmt: skip
    assert not verify(secret, "msg_other", "1614265330", sig, body, 1614265400)
    assert verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,bad " + sig, body,
                  1614265330)  # fmt: skip
