"""`manage.py outbox_relay [--loop] [--now]`: publish what the broker has not taken yet.

With `--loop` and `OUTBOX_PUBLISH = "relay"` this is the process that publishes every request:
it LISTENs for the NOTIFY each request's transaction sends on commit and drains at once, besides
its timed passes (rows the broker refused, requests lost after their publish).
"""

import argparse
import logging
import math
import signal
import threading
import time

import psycopg
from django.core.management.base import CommandParser
from django.db import InterfaceError, OperationalError, connections

from core.commands import DatabaseCommand
from outbox.services import (
    RELAY_GRACE,
    RELAY_WOKEN_GRACE,
    RelayWakeups,
    connections_renew,
    outbox_relay_drain,
    relay_publishes,
)

logger = logging.getLogger(__name__)

LOOP_INTERVAL_SECONDS = 5
MAX_INTERVAL_SECONDS = 3600
# A listening loop waits for a notification in slices this long, so SIGTERM stops it promptly.
LISTEN_SLICE_SECONDS = 0.5
# While the database is unreachable the loop waits twice as long after each failed pass, up to
# this: a restart or a failover is noticed within a minute, and a long outage costs one log
# line a minute, not one every interval.
LOOP_BACKOFF_CAP_SECONDS = 60


def _seconds_between_passes(value: str) -> float:
    """A wait of more than 0 and at most an hour: 0, a negative or NaN would relay in a busy
    loop, infinity would fail the first wait."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_INTERVAL_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds above 0 and at most {MAX_INTERVAL_SECONDS}"
        )
    return seconds


class Command(DatabaseCommand):
    help = (
        "Publish unsent outbox rows to the broker. Without --loop, one pass that tries every "
        "due row once; with --loop, such a pass every few seconds until stopped, and at once "
        "whenever a committed request wakes it (OUTBOX_PUBLISH=relay: LISTEN/NOTIFY); it rides "
        "out a database restart, a cut connection or a failover. SIGTERM or Ctrl-C stops the "
        "loop after the batch in hand."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep relaying until stopped")
        parser.add_argument(
            "--now",
            action="store_true",
            help="ignore the grace period and each row's backoff (the broker was just fixed)",
        )
        parser.add_argument(
            "--interval",
            type=_seconds_between_passes,
            default=LOOP_INTERVAL_SECONDS,
            help="seconds between passes with --loop (more than 0, at most 3600)",
        )

    def handle(self, *args, loop: bool, now: bool, interval: float, **options) -> None:
        stopping = threading.Event()
        if loop:
            # A batch cut off before its commit would be published again by the next relay:
            # harmless (tasks are idempotent) but avoidable, so a stop waits for the batch.
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stopping.set())
        # The listening relay is the only publisher of new rows: it publishes them at once.
        listening = loop and relay_publishes()
        grace = RELAY_WOKEN_GRACE if listening else RELAY_GRACE
        wakeups = RelayWakeups() if listening else None
        failed_passes = 0
        try:
            while True:
                # Like a request boundary: a connection that broke or was cut while the loop
                # slept is replaced (health-checked before reuse) instead of failing the pass.
                connections_renew()
                try:
                    if wakeups is not None and not wakeups.is_open:
                        wakeups.open()  # before the drain: nothing committed after it is missed
                    total = outbox_relay_drain(now_due=now, stopping=stopping.is_set, grace=grace)
                except (OperationalError, InterfaceError, psycopg.Error) as error:
                    if not loop:
                        raise
                    failed_passes += 1
                    wait = min(LOOP_BACKOFF_CAP_SECONDS, interval * 2 ** (failed_passes - 1))
                    logger.warning(
                        "outbox relay: database unavailable, trying again in %.0f s",
                        wait,
                        extra={"error": repr(error), "failed_passes": failed_passes},
                    )
                    connections.close_all()
                    if wakeups is not None:
                        wakeups.close()
                else:
                    if failed_passes:
                        logger.warning(
                            "outbox relay: database reachable again after %d failed passes",
                            failed_passes,
                        )
                    failed_passes, wait = 0, interval
                    if total or not listening:
                        self.stdout.write(f"relayed {total}")
                        self.stdout.flush()
                if not loop or self._sleep(wait, stopping, wakeups):
                    return
        finally:
            if wakeups is not None:
                wakeups.close()

    @staticmethod
    def _sleep(seconds: float, stopping: threading.Event, wakeups: RelayWakeups | None) -> bool:
        """Wait `seconds`, until a request wakes the relay (when listening) or a stop; return
        whether to stop. A listening connection that fails ends the wait: the next pass opens
        a new one (and logs it if the database is gone)."""
        if wakeups is None or not wakeups.is_open:
            return stopping.wait(seconds)
        deadline = time.monotonic() + seconds
        while not stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                if wakeups.wait(min(LISTEN_SLICE_SECONDS, left)):
                    break
            except psycopg.Error:
                wakeups.close()
                break
        return stopping.is_set()
