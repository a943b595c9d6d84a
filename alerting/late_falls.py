"""Falls in stored cane windows that no alerting process judged: after a long outage.

Canes keep streaming while every alerting process is down, and ingest stores each window. On
restart the live fall detector is caught up on the last minute of windows only
(`alerting.service`): windows are bulky, and the live detector keeps each cane's stream in
device order, `_KEEP_S` back from its newest window, so an older window coming after it is
dropped. The broker's session queue does not cover the rest: Mosquitto keeps at most
`max_queued_messages` per session (1,000,000 in `gateway/mosquitto.conf`, about five minutes
of Xicheng's ~3,600 msg/s) and drops what comes beyond.

`LateFalls` judges the windows received between where the previous run stopped (its progress
mark, `store.load_progress`, less `OVERLAP_S`; at most `MAX_BACK_S` ago) and that last minute
(plus `LEAD_S`, so an impact at its start is also judged with the windows before it), with a
fall detector of its own, so the live detector's buffers are untouched. It reads only the
windows around stored impacts (a sample at or above `IMPACT_G`, ingest's `peak_g`): from
`LEAD_S` before each impact to `TRAIL_S` after it, what the model's features and a long lie
need. Windows are fed as the live detector gets them, with a clock tick just before each
(the live service ticks every `tick_s`), so an impact whose cane then went quiet, or a long
lie, is decided before the cane's later windows arrive.

The service calls `step` between drain cycles; each step does one bounded piece of work: read
the impacts received in the next `SLICE_S`, or judge the next `STEP_WINDOWS` windows of one
cane. An SOS never waits behind more than one piece (measured: docs/operations.md, "After
an alerting outage"). Walking canes strike the floor above `IMPACT_G` at nearly every step,
so a walk is one long span, read page by page.

A fall it finds is raised unless the cane already has a fall alert of that impact (raised
live before the outage, or by the caught-up minute): an alert whose `event_ts` lies within
`SAME_FALL_BEFORE_S` before to `SAME_FALL_AFTER_S` after the impact. Its reason says it was
found late, from stored windows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import psycopg

from alerting import store
from alerting.detectors.fall import LONG_LIE_S, MAX_WAIT_S, QUIET_S, FallClassifier, FallDetector
from alerting.fall_features import IMPACT_G, POST_S, PRE_S, RECENTRE_AFTER_S
from alerting.model import Action, Finding, Trigger
from gateway.contract import AlertKind
from gateway.messages import CaneTelemetry
from ingest import readback

logger = logging.getLogger(__name__)

# A window is at most a few seconds long (contract §1: 2 s at 50 Hz): one more before the
# model's PRE_S seconds holds their first samples.
_WINDOW_S = 5.0
LEAD_S = PRE_S + _WINDOW_S
# A long lie is decided LONG_LIE_S after the impact, on whether the cane was picked up by then;
# the model needs POST_S + RECENTRE_AFTER_S: the longer of the two, plus the time a cane gone
# quiet is waited for.
TRAIL_S = max(LONG_LIE_S, POST_S + RECENTRE_AFTER_S + MAX_WAIT_S) + QUIET_S
# The live detector stamps its fall alert with the window that completed the impact's data
# (up to MAX_WAIT_S after it) or, for a long lie, a window up to LONG_LIE_S after it; its
# averaged peak may sit a little before the raw sample: the same fall, seen twice.
SAME_FALL_BEFORE_S = 5.0
SAME_FALL_AFTER_S = LONG_LIE_S + QUIET_S + _WINDOW_S
# Replayed from this long before the previous run's progress mark: what it had received but
# maybe not yet judged.
OVERLAP_S = 60.0
# An outage is judged at most this far back: ingest keeps cane windows 30 days, but a fall
# found a day late is for a welfare check, not a rescue; older windows are logged as skipped.
MAX_BACK_S = 24 * 3600.0
# Impacts are read this much receive time at a time, and windows this many per step (one cane).
SLICE_S = 60.0
STEP_WINDOWS = 150

Conn = psycopg.Connection[Any]
T = TypeVar("T")


def _direct(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


@dataclass(slots=True)
class LateFallStats:
    """What the replay did: slices of impacts read, canes and windows judged, falls raised and
    suppressed."""

    slices: int = 0
    canes: int = 0
    windows: int = 0
    raised: int = 0
    already_alerted: int = 0


def spans(impacts: list[int]) -> list[tuple[int, int]]:
    """Merge each impact's [ts - LEAD_S, ts + TRAIL_S] (device ms) into non-overlapping spans.

    Args:
        impacts: device ts of one cane's impact windows, ms, any order.
    """
    out: list[tuple[int, int]] = []
    for ts in sorted(impacts):
        lo, hi = ts - int(LEAD_S * 1000), ts + int(TRAIL_S * 1000)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _page(
    conn: Conn, device_id: str, cane_spans: list[tuple[int, int]], after: tuple[int, int] | None
) -> list[tuple[int, Any]]:
    return readback.cane_windows(conn, device_id, cane_spans, after=after, limit=STEP_WINDOWS)


@dataclass(slots=True)
class _Judging:
    """One cane being judged: its spans, its detector, how far its windows were read."""

    device_id: str
    spans: list[tuple[int, int]]
    detector: FallDetector
    after: tuple[int, int] | None = None  # (ts, seq) of the last window fed
    newest: tuple[int, int] = (0, 0)  # identity stamped on a tick's finding (engine.tick)


class LateFalls:
    """The stored impacts received in [`since_ms`, `until_ms`), judged a piece per `step`.

    Args:
        since_ms: platform ms, receive time.
        until_ms: platform ms, receive time (exclusive).
        devices: whether a device id is one of this process's canes.
        model: the fall model's classifier; `threshold` its operating point.
        to_actions: the engine's findings -> actions (device -> elder, place).
    """

    def __init__(
        self,
        since_ms: int,
        until_ms: int,
        devices: Callable[[str], bool],
        model: FallClassifier,
        threshold: float,
        to_actions: Callable[[list[Finding]], list[Action]],
    ) -> None:
        self.since_ms, self.until_ms = since_ms, until_ms
        self._next_ms = since_ms
        self._devices = devices
        self._model, self._threshold = model, threshold
        self._to_actions = to_actions
        self._todo: list[tuple[str, list[tuple[int, int]]]] = []  # popped from the end
        self._slice_ms = since_ms  # receive time from which the current slice was read
        self._judging: _Judging | None = None
        self._judged_to: dict[str, int] = {}  # device -> end of its last judged span, ms
        self._unchecked: list[tuple[Finding, int, int]] = []  # found, not yet checked new
        self.stats = LateFallStats()

    @property
    def done(self) -> bool:
        """Whether every impact of the range has been judged."""
        return (
            self._judging is None
            and not self._todo
            and not self._unchecked
            and self._next_ms >= self.until_ms
        )

    @property
    def judged_through_ms(self) -> int:
        """Receive time before which every stored impact has been judged (platform ms)."""
        return self.until_ms if self.done else self._slice_ms

    def step(self, conn: Conn, now_ms: int, db: Callable[..., Any] = _direct) -> list[Action]:
        """Do the next piece: read a slice of impacts, or judge a page of one cane's windows.

        Args:
            conn: reads impacts, windows and the cane's fall alerts (each read committed).
            now_ms: the platform clock: a cane's impacts are decided, and its due long lies
                raised, once all its windows are in.
            db: runs each read, `db(fn, *args)` (the alert writer's, with its deadline); the
                reads touch no state here, so one abandoned on its thread changes nothing.

        Returns:
            The alerts to raise.

        Raises:
            psycopg.OperationalError: the database failed or did not answer in time; the
                piece is done again next step, and falls found are kept until checked.
        """
        if self._unchecked:
            return self._check(conn, db)
        if self._judging is None:
            if not self._todo:
                if self._next_ms < self.until_ms:
                    self._read_slice(conn, db)
                return []
            device_id, cane_spans = self._todo[-1]
            self._judging = _Judging(
                device_id, cane_spans, FallDetector(self._model, self._threshold)
            )
            self._todo.pop()
        self._judge(conn, db, self._judging, now_ms)
        return self._check(conn, db)

    def _read_slice(self, conn: Conn, db: Callable[..., Any]) -> None:
        lo = self._next_ms
        hi = min(lo + int(SLICE_S * 1000), self.until_ms)
        impacts: dict[str, list[int]] = {}
        for device_id, ts in db(readback.cane_impacts, conn, lo, hi, IMPACT_G):
            # Judged with its full span already, as part of a walk read in an earlier slice.
            if ts + TRAIL_S * 1000 <= self._judged_to.get(device_id, -(2**62)):
                continue
            if self._devices(device_id):
                impacts.setdefault(device_id, []).append(ts)
        self._todo = sorted(((d, spans(t)) for d, t in impacts.items()), reverse=True)
        self._slice_ms, self._next_ms = lo, hi
        self.stats.slices += 1

    def _judge(self, conn: Conn, db: Callable[..., Any], cane: _Judging, now_ms: int) -> None:
        page = db(_page, conn, cane.device_id, cane.spans, cane.after)
        found: list[tuple[Finding, int, int]] = []
        detector = cane.detector
        for received_ms, window in page:
            assert isinstance(window, CaneTelemetry)
            # What the live service's ticks decided before this window came.
            found += [(f, *cane.newest) for f in detector.tick(received_ms - 1)]
            cane.newest = cane.after = (window.ts, window.seq)
            found += [(f, *cane.newest) for f in detector.on_window(window, received_ms)]
        self.stats.windows += len(page)
        if len(page) < STEP_WINDOWS:  # all its windows are in
            found += [(f, *cane.newest) for f in detector.tick(now_ms)]
            self._judged_to[cane.device_id] = cane.spans[-1][1]
            self._judging = None
            self.stats.canes += 1
        self._unchecked = [(f, ts, seq) for f, ts, seq in found if isinstance(f, Trigger)]

    def _check(self, conn: Conn, db: Callable[..., Any]) -> list[Action]:
        """The falls found that no alert covers yet, as actions (all checked, or none)."""
        near = [
            db(
                store.fall_alert_near,
                conn,
                f.device_id,
                f.event_ts - int(SAME_FALL_BEFORE_S * 1000),
                f.event_ts + int(SAME_FALL_AFTER_S * 1000),
            )
            for f, _, _ in self._unchecked
        ]
        raised: list[Finding] = []
        for (finding, ts, seq), alert_id in zip(self._unchecked, near, strict=True):
            if alert_id is None:
                raised.append(self._late(finding, ts, seq))
                continue
            self.stats.already_alerted += 1
            logger.info(
                "fall of %s at ts=%d found in stored windows: already alerted as %s",
                finding.device_id,
                finding.event_ts,
                alert_id,
            )
        self._unchecked = []
        self.stats.raised += len(raised)
        return self._to_actions(raised)

    @staticmethod
    def _late(finding: Finding, ts: int, seq: int) -> Trigger:
        """The trigger stamped with its window's identity, its reason saying it came late."""
        assert isinstance(finding, Trigger) and finding.kind is AlertKind.FALL
        reason = f"{finding.reason}; found late, in windows stored while alerting was down"
        return replace(finding, event_ts=ts, event_seq=seq, reason=reason)
