"""Active/standby alerting: one PostgreSQL session-level advisory lock picks the active process.

Why active/standby and not `$share`: the detectors are stateful per device (silence timers,
fall windows, movement history), and a shared subscription spreads messages per message, not
per device, so each replica sees half of every device and raises false offline alerts.

The lock, not a lease row: `pg_try_advisory_lock` is released by the server the moment the
holder's session ends, so a SIGKILLed (or crashed, or `pg_terminate_backend`-ed) active is
replaced after one poll of the standby (`ALERTING_STANDBY_POLL_S`, 1 s) instead of after a
lease expiry. A partitioned holder is dropped by the server's own TCP keepalives and
`tcp_user_timeout`, which the lock session sets (they are per-session settings, PostgreSQL
docs "Connection Settings") to release the lock within about 10 s. The key is derived from
the schema and the topic prefix, so each deployment (and each test) has its own lock.

MQTT: every replica uses the SAME client id (`ALERTING_CLIENT_ID`) and so the same persistent
session, but only the lock holder connects. The standby holds no MQTT connection: it neither
receives nor acknowledges anything. While no one is connected the broker queues the QoS 1
messages of that session (MQTT 5 §3.1.2.11.2), and messages the dead active received but had
not acknowledged are sent again when the new active resumes the session (MQTT 5 §4.4). The
new active also catches up from the readings ingest stored (which covers the session expiry and
anything the broker's queue limit dropped); duplicates are dropped by message identity.

Losing the lock: the holder probes its lock session every poll. When the session breaks it
reconnects at once; if the lock is free it takes it again, and if another process holds it,
it stops acting at once (the service halts its loop and leaves the broker). While the
database cannot be reached at all the holder keeps acting, because no standby can take the
lock then either and the alert path pages without the database. A holder cut off from the
database but not from the broker is fenced by the broker: the new active resumes the same
session, the broker closes the old connection (EMQX sends DISCONNECT 0x8E "Session taken
over", MQTT 5 §3.14.2.1; Mosquitto 2.0 just closes the socket), and a holder whose session is
closed while no probe has confirmed its lock for two polls stops acting instead of letting
paho reconnect and take the session back. (A broker restart during a database outage is read
the same way: the holder stands by until the database returns, and then one process leads.)

Partitions (alerting.partition, `ALERTING_PARTITIONS`): to use more than one core, N
processes each act for the elders whose id hashes to their partition k. Each has its own
sessions (`<client id>-p<k>of<N>`): telemetry comes by one filter per own device
(alerting.mqtt), events and statuses by the wildcard, the other partitions' dropped by topic
before decoding; a shared subscription could not do this
(Mosquitto's `$share` is round robin per message, and even EMQX's `hash_topic` would split a
device's three topics and an elder's devices). Each partition has its own lock (the scope
carries `-p<k>of<N>`), hence its own active and standby, and every partition's lock session
holds this deployment's unpartitioned key in shared mode: an unpartitioned process and a
partitioned set exclude each other. Sets of different N exclude each other too, or two
processes would act for the same elder (partition k of N and partition j of M own different
elders): every lock session of a set of N holds that set's width key in shared mode, taken
only after checking that no width key of another M (1..MAX_PARTITIONS) is held, and given
back when one is. Every process of the old set, standbys included, holds its width until it
stops, so a new set waits as standby (logging which N is in the way) until the old set is
stopped; it then warms up from stored history and the broker sessions of its new client ids
start empty, so catch-up replays the last `ALERTING_CATCHUP_S` from the database. Not fenced:
a process of the old set cut off from the database but not from the broker keeps acting
(as above) after its session's end frees its width, and the new set's client ids differ, so
the broker does not close its sessions; the same holds between an unpartitioned process and a
partitioned set. Stop the old set before the new one can take over.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from alerting.partition import MAX_PARTITIONS, Partition
from ingest.pg import connect

logger = logging.getLogger(__name__)

# The lock session tells the server to drop it soon after the network goes quiet: keepalive
# after 5 s idle, every 2 s, 3 missed; unacknowledged data for 10 s closes it (server GUCs
# tcp_keepalives_* and tcp_user_timeout). The standby can then take over within ~11 s.
_SERVER_KEEPALIVE = (
    "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"
    " -c tcp_user_timeout=10000"
)
# Polls in a row a holder's re-take may find another width's key before it stops acting.
_WIDTH_RETRIES = 3
# Lock probes are one round trip; anything slower means the session is in trouble.
_PROBE_TIMEOUT_MS = 3000
_MAX_BACKOFF_S = 30.0
# DISCONNECT reason "Session taken over" (MQTT 5 §3.14.2.1): another connection, with our
# client id, resumed the session.
SESSION_TAKEN_OVER = 0x8E
_KEY_SQL = "SELECT hashtextextended('eldercare-alerting:' || current_schema() || ':' || %s, 0)"
# A partition set's width key, per N, derived from the deployment's key.
_WIDTH_KEYS_SQL = (
    "SELECT m, hashtextextended('eldercare-alerting-width:' || %s::text || ':' || m, 0)"
    " FROM generate_series(1, %s) AS m"
)
# The widths whose key some session of this database holds, read from the lock table (a
# bigint advisory key shows as classid = its high 32 bits, objid = its low ones, objsubid 1):
# reading takes no lock, so it never gets in the way of a set taking its own width.
_HELD_WIDTHS_SQL = (
    "SELECT coalesce(array_agg(DISTINCT w.m ORDER BY w.m), '{}')"
    " FROM unnest(%s::int[], %s::bigint[]) AS w(m, k) JOIN pg_locks AS l"
    " ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND l.classid::bigint = ((w.k >> 32) & 4294967295)"
    " AND l.objid::bigint = (w.k & 4294967295)"
)


def _lock_url(url: str) -> str:
    existing = conninfo_to_dict(url).get("options")
    options = f"{existing} {_SERVER_KEEPALIVE}" if existing else _SERVER_KEEPALIVE
    return make_conninfo(url, options=options)


class Leadership:
    """The alerting lock: `acquire` blocks as standby; `lost` is set when another took it.

    Args:
        database_url: where the lock lives (the alerting database).
        scope: what the lock is for within the schema (the topic prefix).
        poll_s: how often the standby tries the lock and the holder probes it.
        key: a fixed advisory-lock key, or None to derive one from the schema and `scope`.
        partition: the partition this process acts for (alerting.partition). A partition's
            lock is its own (the scope, or `key + 1 + k`, carries the partition), so each
            partition has its own active and standby; every partition's lock session also
            holds the deployment's own key in SHARED mode, so an unpartitioned process (which
            takes it exclusively) and partitioned ones never act at the same time, and its
            set's width key in SHARED mode once no set of another width holds its own, so
            sets of different N never act at the same time either.
    """

    def __init__(
        self,
        database_url: str,
        scope: str,
        poll_s: float,
        key: int | None,
        *,
        partition: Partition | None = None,
    ) -> None:
        self._url = _lock_url(database_url)
        self.partition = partition or Partition()
        self._scope = scope + self.partition.suffix
        self._whole_scope = scope
        # The deployment's key, held shared by partitions (None until derived).
        self.whole_key: int | None = key
        if key is not None and not self.partition.whole:
            key += 1 + self.partition.index
        self.poll_s = poll_s
        self.key = key
        self._shared = False
        self._width = False
        self._width_conflict: list[int] = []  # the widths last logged as in the way
        self._width_blocked = False  # the last `_try_lock` stopped at another width's key
        self._width_keys: dict[int, int] = {}  # N -> width key, derived once
        self._width_misses = 0  # polls in a row a re-take found another width's key
        self.lost = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._keeper: threading.Thread | None = None
        self._done = threading.Event()
        self._unreachable = False
        self._confirmed_mono = 0.0

    def acquire(self, stop: threading.Event) -> bool:
        """Wait as standby until this process holds the lock; False if `stop` came first."""
        delay_s = 0.5
        announced = False
        while not stop.is_set():
            try:
                if self._try_lock():
                    self._confirmed_mono = time.monotonic()
                    logger.info("active: holding the alerting lock (key %d)", self.key)
                    self.lost.clear()
                    self._done.clear()
                    return True
                if not announced:
                    logger.info(
                        "standby: another process holds the alerting lock (key %d); polling"
                        " every %.1f s",
                        self.key,
                        self.poll_s,
                    )
                    announced = True
                delay_s = 0.5
                stop.wait(self.poll_s)
            except psycopg.OperationalError as exc:
                self._drop()
                logger.warning(
                    "standby: database unavailable (%s); retrying in %.1f s", exc, delay_s
                )
                stop.wait(delay_s * random.uniform(0.8, 1.2))
                delay_s = min(delay_s * 2, _MAX_BACKOFF_S)
        return False

    def keep(self, stop: threading.Event, halt: threading.Event) -> None:
        """Probe the lock every poll in a thread; set `halt` when it is lost or `stop` is set."""

        def run() -> None:
            while not self._done.wait(self.poll_s):
                if stop.is_set():
                    break
                held = self._still_held()
                if held:
                    self._confirmed_mono = time.monotonic()
                elif held is not None:
                    self.lost.set()
                    logger.warning("another process took the alerting lock: stopping at once")
                    break
            halt.set()
            # A probe that outlived `release` (a hung session) may have taken the lock again:
            # never leave a lock session behind that no one will close.
            if self._done.is_set() or self.lost.is_set():
                self._drop()

        self._keeper = threading.Thread(target=run, name="alerting-lock", daemon=True)
        self._keeper.start()

    def release(self) -> None:
        """Stop probing and give the lock up (closing the session releases it)."""
        self._done.set()
        if self._keeper is not None and self._keeper is not threading.current_thread():
            self._keeper.join(self.poll_s + 5)
        self._keeper = None
        self._drop()

    def confirmed(self) -> bool:
        """Whether a probe proved the lock ours within the last two polls."""
        return time.monotonic() - self._confirmed_mono <= 2 * self.poll_s

    def _try_lock(self) -> bool:
        self._width_blocked = False
        if self._conn is None or self._conn.closed:
            self._conn = connect(
                self._url,
                autocommit=True,
                statement_timeout_ms=_PROBE_TIMEOUT_MS,
                application_name="eldercare-alerting-lock",
            )
        if self.key is None:
            row = self._conn.execute(_KEY_SQL, (self._scope,)).fetchone()
            assert row is not None
            self.key = int(row[0])
        if not self.partition.whole and not self._shared:
            if self.whole_key is None:
                row = self._conn.execute(_KEY_SQL, (self._whole_scope,)).fetchone()
                assert row is not None
                self.whole_key = int(row[0])
            # Taken once per session: shared locks stack, and the session keeps it.
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock_shared(%s)", (self.whole_key,)
            ).fetchone()
            self._shared = bool(row and row[0])
            if not self._shared:
                return False  # an unpartitioned process is acting
        if not self.partition.whole and not self._width:
            self._width = self._take_width()
            if not self._width:
                self._width_blocked = True
                return False  # a set of another width is running
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        return bool(row and row[0])

    def _take_width(self) -> bool:
        """Hold this set's width key shared unless a set of another width holds its own.

        Own key first, then the lock table read: of two sets starting at the same instant,
        the one that reads last sees the other's key (each takes before it reads), so they
        never both go on; both may give way, and then both retry on their next poll.
        """
        assert self._conn is not None and self.whole_key is not None
        if not self._width_keys:
            rows = self._conn.execute(_WIDTH_KEYS_SQL, (self.whole_key, MAX_PARTITIONS))
            self._width_keys = {int(m): int(k) for m, k in rows.fetchall()}
        keys = dict(self._width_keys)
        mine = keys.pop(self.partition.count)
        row = self._conn.execute("SELECT pg_try_advisory_lock_shared(%s)", (mine,)).fetchone()
        if not (row and row[0]):
            return False  # no one takes a width key exclusively: not seen
        row = self._conn.execute(_HELD_WIDTHS_SQL, (list(keys), list(keys.values()))).fetchone()
        held = [int(m) for m in (row[0] if row else [])]
        if not held:
            self._width_conflict = []
            return True
        self._conn.execute("SELECT pg_advisory_unlock_shared(%s)", (mine,))
        if held != self._width_conflict:
            logger.warning(
                "standby: a partition set of N=%s acts for this deployment; this set has"
                " N=%d and waits until every process of that set is stopped",
                ", ".join(map(str, held)),
                self.partition.count,
            )
        self._width_conflict = held
        return False

    def _still_held(self) -> bool | None:
        """Probe; on a broken session reconnect and re-take the lock if it is still free.

        Returns:
            True: held; False: another process holds it; None: the database is unreachable,
            or another width's key was held at the re-take, fewer than `_WIDTH_RETRIES`
            polls in a row (a standby of a new set holds its width for the instant of its
            check; a set that really acts holds it on).
        """
        if self._conn is not None:
            try:
                self._conn.execute("SELECT 1")
                return True
            except psycopg.Error as exc:
                logger.warning("alerting lock session lost (%s): reconnecting", exc)
                self._drop()
        try:
            if self._try_lock():
                logger.info("alerting lock taken again (key %d)", self.key)
                self._unreachable = False
                self._width_misses = 0
                return True
            if self._width_blocked and self._width_misses < _WIDTH_RETRIES:
                self._width_misses += 1
                self._drop()  # holding nothing: the next poll re-takes, not just probes
                return None
            return False
        except psycopg.OperationalError as exc:
            # Nobody can take the lock while the database is away: keep paging.
            self._drop()
            if not self._unreachable:
                logger.warning("database unreachable (%s): still acting until it returns", exc)
            self._unreachable = True
            return None

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._shared = False
        self._width = False
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                logger.debug("closing the lock session failed", exc_info=True)


def fence_on_takeover(client: paho.Client, halt: threading.Event, leader: Leadership) -> None:
    """Set `halt` when the broker hands our session to another connection (the new active).

    The broker-side fence for a holder that cannot tell it lost the lock (cut off from the
    database but not from the broker): the new active resumes the same session and the broker
    closes our connection. EMQX says so (DISCONNECT 0x8E); Mosquitto 2.0 just closes the
    socket, so a broker disconnect while our lock is unconfirmed counts as a takeover too. We
    stop acting instead of letting paho reconnect and take the session back.
    """
    inner: Callable[..., None] | None = client.on_disconnect

    def on_disconnect(
        c: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any = None
    ) -> None:
        taken = getattr(rc, "value", rc) == SESSION_TAKEN_OVER
        if taken or (getattr(rc, "is_failure", False) and not leader.confirmed()):
            logger.warning(
                "broker session lost while the alerting lock is unconfirmed (%s): another"
                " alerting process took it over; stopping",
                rc,
            )
            halt.set()
        if inner is not None:
            inner(c, userdata, flags, rc, props)

    client.on_disconnect = on_disconnect
