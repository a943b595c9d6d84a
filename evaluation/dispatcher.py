"""A simulated care-centre staff for `eldercare eval`: operators take and close alerts.

Without it every alert stays open until it escalates, so escalation and answer-time figures
say nothing. Each centre has a few operators; an alert waits for a free one (first come,
first served), is taken after a reading-and-answering delay, and is closed after a call
(call-back, outcome). The answer delay is lognormal with a median of 20 s, so about 97.5 % of
calls to an idle centre are answered within 60 s: the telecare target (TEC Quality, formerly
TSA, Quality Standards Framework). Under load, alerts queue and escalate as they would.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import psycopg

from alerting import store
from alerting.lifecycle import AlertRow, TransitionError
from gateway.contract import AlertStatus

logger = logging.getLogger(__name__)

ACTOR_PREFIX = "sim-operator"


@dataclass(frozen=True, slots=True)
class StaffModel:
    """How a centre's staff behave (simulated seconds)."""

    operators_per_centre: int = 2
    answer_median_s: float = 20.0
    answer_sigma: float = 0.5  # lognormal: p97.5 = 20 s x e^(1.96 x 0.5) = 53 s
    handle_min_s: float = 60.0
    handle_max_s: float = 300.0


@dataclass(slots=True)
class _Plan:
    take_ms: int
    close_ms: int
    operator: str


@dataclass(slots=True)
class Staff:
    """The operators' plan (pure): who takes which alert when, and when they close it."""

    model: StaffModel
    rng: np.random.Generator
    plans: dict[str, _Plan] = field(default_factory=dict)
    free_ms: dict[str, int] = field(default_factory=dict)  # operator -> when free again

    def moves(self, active: Iterable[AlertRow], now_ms: int) -> list[tuple[str, AlertStatus, str]]:
        """(alert_id, target status, actor) due at `now_ms` for the active alerts."""
        out: list[tuple[str, AlertStatus, str]] = []
        for alert in sorted(active, key=lambda a: a.raised_ts):
            plan = self.plans.get(alert.alert_id) or self._plan(alert, now_ms)
            if alert.status is AlertStatus.ACKNOWLEDGED:
                if now_ms >= plan.close_ms:
                    out.append((alert.alert_id, AlertStatus.RESOLVED, plan.operator))
            elif now_ms >= plan.take_ms:
                out.append((alert.alert_id, AlertStatus.ACKNOWLEDGED, plan.operator))
        return out

    def _plan(self, alert: AlertRow, now_ms: int) -> _Plan:
        ops = [
            f"{ACTOR_PREFIX}-{alert.center_id}-{i}" for i in range(self.model.operators_per_centre)
        ]
        operator = min(ops, key=lambda o: self.free_ms.get(o, 0))
        seen_ms = max(now_ms, self.free_ms.get(operator, 0))
        answer_s = self.model.answer_median_s * math.exp(
            self.rng.normal(0, self.model.answer_sigma)
        )
        handle_s = float(self.rng.uniform(self.model.handle_min_s, self.model.handle_max_s))
        take_ms = seen_ms + int(answer_s * 1000)
        close_ms = take_ms + int(handle_s * 1000)
        self.free_ms[operator] = close_ms
        plan = self.plans[alert.alert_id] = _Plan(take_ms, close_ms, operator)
        return plan


class SimulatedDispatcher:
    """Runs `Staff` against the alerts table on the simulated clock, in a thread.

    Args:
        database_url: the evaluation schema.
        clock: the simulated platform clock (ms).
        seed: the operators' random stream.
        model: staff behaviour.
        period_s: how often (real seconds) it looks at the active alerts.
    """

    def __init__(
        self,
        database_url: str,
        clock: Callable[[], int],
        seed: int,
        model: StaffModel | None = None,
        period_s: float = 0.1,
    ) -> None:
        self.url, self.clock, self.period_s = database_url, clock, period_s
        self.staff = Staff(model or StaffModel(), np.random.default_rng([seed, 41]))
        self.moves = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-dispatcher", daemon=True)

    def start(self) -> None:
        """Start taking alerts."""
        self._thread.start()

    def stop(self) -> None:
        """Stop (alerts still open stay open)."""
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(self.period_s):
                now_ms = self.clock()
                for alert_id, target, actor in self.staff.moves(store.active_alerts(conn), now_ms):
                    try:
                        store.transition(conn, alert_id, target, actor, "simulated call", now_ms)
                        self.moves += 1
                    except TransitionError:
                        logger.debug("alert %s changed under the operator", alert_id)
