"""Request and response bodies of the console API (the OpenAPI description is built from them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from dashboard.accounts import Outcome, Role, Step, User

Language = Literal["zh-CN", "en"]


class UserOut(BaseModel):
    """An account as the console shows it."""

    username: str
    display_name: str
    role: Role
    center_id: str | None
    elder_ids: list[str]
    language: Language

    @classmethod
    def of(cls, user: User) -> UserOut:
        """From the signed-in user."""
        return cls(
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            center_id=user.center_id,
            elder_ids=list(user.elder_ids),
            language="en" if user.language == "en" else "zh-CN",
        )


class LoginIn(BaseModel):
    """Credentials."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    """The signed-in user and the CSRF token to send as `X-CSRF-Token`."""

    user: UserOut
    csrf_token: str


class LogoutIn(BaseModel):
    """Who takes over the alerts this user holds (required when holding any)."""

    handover_to: str | None = None


class HeldOut(BaseModel):
    """Sign-out refused: the alerts this user still holds."""

    detail: str
    held: list[str]


class Alert(BaseModel):
    """An alert: the fields of contract §2 plus the console's."""

    v: Literal[1] = 1
    alert_id: str
    kind: str
    severity: str
    status: str
    elder_id: str
    device_id: str
    center_id: str
    distance_m: float
    in_coverage: bool
    lat: float
    lon: float
    event_ts: int
    raised_ts: int
    updated_ts: int
    reason: str
    acked_ts: int | None
    closed_ts: int | None
    escalations: int
    taken_by: str | None
    outcome: Outcome | None
    trigger_count: int
    elder_name: str


class AlertPage(BaseModel):
    """One page of the alert list, newest first."""

    items: list[Alert]
    next_cursor: str | None


class AlertQueue(BaseModel):
    """The active alerts: smoke first, then severity, then age."""

    items: list[Alert]


class HistoryEntry(BaseModel):
    """One transition of an alert."""

    event_id: int
    at_ts: int
    from_status: str | None
    to_status: str
    center_id: str
    actor: str
    note: str


class StepEntry(BaseModel):
    """One timed step of the procedure card."""

    id: int
    step: Step
    result: str
    at_ts: int
    actor: str


class AlertOut(BaseModel):
    """An alert after an action."""

    alert: Alert


class ResolveIn(BaseModel):
    """How the alert ended (required) and a free note."""

    outcome: Outcome
    note: str = Field("", max_length=4000)


class NoteIn(BaseModel):
    """A free note kept in the alert's history."""

    note: str = Field(min_length=1, max_length=4000)


class StepIn(BaseModel):
    """A procedure-card step and what came of it."""

    step: Step
    result: str = Field("", max_length=4000)


class Created(BaseModel):
    """The id of what was stored."""

    id: int


class Transition(BaseModel):
    """The change a feed event carries."""

    from_status: str | None
    to_status: str
    actor: str
    note: str
    at_ts: int


class FeedEvent(BaseModel):
    """One message of the live feed."""

    event_id: int
    alert: Alert
    transition: Transition
