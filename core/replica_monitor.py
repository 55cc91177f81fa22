"""Which read replicas may serve reads right now: reachable, still standbys, close enough behind.

Each process measures its replicas in a background thread, at most once a second and only while
reads ask for replicas, so a request never waits for a check: it takes the latest state, and a
state older than a few seconds counts as none (reads go to the primary). State changes are
logged once each (down, lagging, serving again), not once per request.

Lag is measured by positions in the primary's write-ahead log (what it has flushed, which is
what a replica can have received), not by timestamps. A replica's
`pg_last_xact_replay_timestamp()` is the commit time of the last transaction it replayed, so
while the primary is idle it grows old although nothing is missing. Instead each check reads the
primary's current position and remembers when it first saw each; a replica whose replay
position has passed a position is missing nothing the primary had written by then. Its lag is
the age of the oldest position seen that it has not replayed: zero for a replica of an idle
primary, growing from the first write it does not replay. The resolution is one check interval.
"""

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

from core.sessions import own_session_params

logger = logging.getLogger("stockwire.replicas")

CHECK_INTERVAL_SECONDS = 1.0
# A state older than this is no state: checks stopped (no reads asked for a while) or hang on a
# server that accepts connections and never answers. Reads then go to the primary.
STATE_VALID_SECONDS = 3 * CHECK_INTERVAL_SECONDS
# Checks go on this long after the last read that asked for a replica, so a shop with a request
# every few seconds keeps a fresh state; a process that stopped reading stops checking.
CHECKS_OUTLIVE_DEMAND_SECONDS = 60.0
# libpq's smallest: a replica that does not answer costs the monitor thread this, never a request.
CONNECT_TIMEOUT_SECONDS = 2
STATEMENT_TIMEOUT_MS = 2000

UP = "up"
LAGGING = "lagging"
DOWN = "down"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class ReplicaState:
    """What the last check (or a failed read) found about one replica."""

    alias: str
    status: str
    lag_seconds: float | None
    detail: str
    checked_at: float  # time.monotonic()


def lsn_value(lsn: str) -> int:
    """The position `X/Y` of PostgreSQL's write-ahead log as one comparable number."""
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def _monitor_connection_params(alias: str) -> dict[str, Any]:
    """psycopg's arguments for the monitor's own session with `alias`: Django's, minus what only
    Django's cursors use, with short timeouts and a name that tells it apart in pg_stat_activity.
    """
    params = own_session_params(alias)
    options = params.get("options", "")
    params.update(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        application_name="stockwire-replica-monitor",
        options=f"{options} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip(),
    )
    return params


class ReplicaMonitor:
    """The health of this process's replicas: measured by `check()`, read by `usable()`."""

    def __init__(self, aliases: tuple[str, ...]) -> None:
        self.aliases = aliases
        self.pid = os.getpid()
        self._states: dict[str, ReplicaState] = {}
        # (when first seen, position) of the primary's log, oldest first (see the module's doc).
        self._positions: deque[tuple[float, int]] = deque()
        self._sessions: dict[str, psycopg.Connection] = {}
        self._check_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._demanded_at = float("-inf")
        self._round_started_at = float("-inf")

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def usable(self) -> list[str]:
        """The replicas found up and close enough behind by a recent check; asks for a new
        check when the last one is more than an interval old, without waiting for it."""
        now = time.monotonic()
        self._demanded_at = now
        if now - self._round_started_at >= CHECK_INTERVAL_SECONDS:
            self._thread_started()
            self._wake.set()
        return [
            alias
            for alias in self.aliases
            if (state := self._states.get(alias)) is not None
            and state.status == UP
            and now - state.checked_at <= STATE_VALID_SECONDS
        ]

    def states(self) -> list[ReplicaState]:
        return [self._states[alias] for alias in self.aliases if alias in self._states]

    def read_failed(self, alias: str, error: Exception) -> None:
        """A read on `alias` failed: skip it until a check finds it well again."""
        self._record(alias, DOWN, None, f"a read failed: {str(error).strip()}", time.monotonic())

    def check(self) -> None:
        """Measure every replica once, now: reachable, still in recovery, how far behind."""
        with self._check_lock:
            started = time.monotonic()
            self._round_started_at = started
            try:
                (position,) = self._query(DEFAULT_DB_ALIAS, "SELECT pg_current_wal_flush_lsn()")
            except psycopg.Error as error:
                for alias in self.aliases:
                    self._record(
                        alias, UNKNOWN, None, f"the primary did not answer: {error}", started
                    )
                return
            self._position_seen(started, lsn_value(position))
            for alias in self.aliases:
                self._record(alias, *self._measured(alias, started), started)

    def stop(self) -> None:
        """Stop checking and close the monitor's sessions."""
        self._stop.set()
        self._wake.set()
        with self._check_lock:
            for alias in list(self._sessions):
                self._disconnect(alias)

    def _thread_started(self) -> None:
        with self._thread_lock:
            if self._thread is None and not self.stopped:
                self._thread = threading.Thread(
                    target=self._run, name="replica-monitor", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self.stopped:
            self._wake.wait()
            self._wake.clear()
            while (
                not self.stopped
                and time.monotonic() - self._demanded_at < CHECKS_OUTLIVE_DEMAND_SECONDS
            ):
                try:
                    self.check()
                except Exception:  # a bug here must not end the checks; reads keep the primary
                    logger.exception("checking the replicas failed")
                self._stop.wait(CHECK_INTERVAL_SECONDS)

    def _measured(self, alias: str, now: float) -> tuple[str, float | None, str]:
        try:
            in_recovery, replayed = self._query(
                alias, "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()"
            )
        except psycopg.Error as error:
            return DOWN, None, str(error).strip()
        if not in_recovery or replayed is None:
            # A promoted replica no longer follows the primary: what it holds drifts apart.
            return DOWN, None, "not a standby in recovery (promoted?)"
        lag = self._lag(lsn_value(replayed), now)
        bound = settings.DATABASE_REPLICA_MAX_LAG_SECONDS
        if lag is None:
            return UNKNOWN, None, "behind the first position this process saw; lag not known yet"
        if lag > bound:
            return LAGGING, lag, f"{lag:.1f} s behind the primary, more than {bound:g} s"
        return UP, lag, ""

    def _position_seen(self, now: float, position: int) -> None:
        if not self._positions or position > self._positions[-1][1]:
            self._positions.append((now, position))
        # Keep the newest position older than the bound too: a replica that has not replayed
        # it is lagging beyond the bound, whatever happened since.
        horizon = now - settings.DATABASE_REPLICA_MAX_LAG_SECONDS - CHECK_INTERVAL_SECONDS
        while len(self._positions) > 1 and self._positions[1][0] < horizon:
            self._positions.popleft()

    def _lag(self, replayed: int, now: float) -> float | None:
        """Seconds since the primary held the oldest position `replayed` has not reached: 0
        when it has reached them all; None when it is behind even the oldest remembered and
        that one is younger than the bound (a process that just started cannot tell)."""
        for index, (seen_at, position) in enumerate(self._positions):
            if position > replayed:
                lag = now - seen_at
                too_young = lag <= settings.DATABASE_REPLICA_MAX_LAG_SECONDS
                return None if index == 0 and too_young else lag
        return 0.0

    def _query(self, alias: str, sql: str) -> tuple:
        try:
            session = self._sessions.get(alias)
            if session is None or session.closed:
                session = psycopg.connect(**_monitor_connection_params(alias), autocommit=True)
                self._sessions[alias] = session
            return session.execute(sql).fetchone()
        except psycopg.Error:
            self._disconnect(alias)
            raise

    def _disconnect(self, alias: str) -> None:
        session = self._sessions.pop(alias, None)
        if session is not None:
            session.close()

    def _record(
        self, alias: str, status: str, lag: float | None, detail: str, checked_at: float
    ) -> None:
        previous = self._states.get(alias)
        self._states[alias] = ReplicaState(alias, status, lag, detail, checked_at)
        if previous is not None and previous.status == status:
            return
        extra = {"replica": alias, "replica_status": status}
        if status == UP:
            again = " again" if previous is not None and previous.status != UNKNOWN else ""
            logger.info("replica %s serves reads%s", alias, again, extra=extra)
        elif status == UNKNOWN:
            logger.info("replica %s not used for now: %s", alias, detail, extra=extra)
        else:
            logger.warning(
                "replica %s is %s, reads go to the primary: %s", alias, status, detail, extra=extra
            )


_monitor: ReplicaMonitor | None = None
_monitor_lock = threading.Lock()
# A monitor a forked child inherited: never closed nor collected there, since closing a session
# it shares with its parent would end the parent's session.
_inherited: list[ReplicaMonitor] = []


def replica_monitor() -> ReplicaMonitor:
    """This process's monitor of the replicas in settings (a new one after a fork or a stop)."""
    global _monitor
    aliases = tuple(settings.DATABASE_REPLICAS)
    current = _monitor
    if (
        current is not None
        and current.aliases == aliases
        and current.pid == os.getpid()
        and not current.stopped
    ):
        return current
    with _monitor_lock:
        if _monitor is current:
            if current is not None and current.pid != os.getpid():
                _inherited.append(current)
            elif current is not None:
                current.stop()
            _monitor = ReplicaMonitor(aliases)
        return _monitor
