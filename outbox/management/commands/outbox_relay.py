"""`manage.py outbox_relay [--loop] [--now]`: publish what the broker has not taken yet."""

import logging
import signal
import threading

from django.core.management.base import BaseCommand, CommandParser
from django.db import InterfaceError, OperationalError, connections

from outbox.services import connections_renew, outbox_relay_drain

logger = logging.getLogger(__name__)

LOOP_INTERVAL_SECONDS = 5
# While the database is unreachable the loop waits twice as long after each failed pass, up to
# this: a restart or a failover is noticed within a minute, and a long outage costs one log
# line a minute, not one every interval.
LOOP_BACKOFF_CAP_SECONDS = 60


class Command(BaseCommand):
    help = (
        "Publish unsent outbox rows to the broker. Without --loop, one pass that tries every "
        "due row once; with --loop, such a pass every few seconds until stopped (a relay "
        "without beat), which rides out a database restart, a cut connection or a failover. "
        "SIGTERM or Ctrl-C stops the loop after the batch in hand."
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
            type=float,
            default=LOOP_INTERVAL_SECONDS,
            help="seconds between passes with --loop",
        )

    def handle(self, *args, loop: bool, now: bool, interval: float, **options) -> None:
        stopping = threading.Event()
        if loop:
            # A batch cut off before its commit would be published again by the next relay:
            # harmless (tasks are idempotent) but avoidable, so a stop waits for the batch.
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stopping.set())
        failed_passes = 0
        while True:
            # Like a request boundary: a connection that broke or was cut while the loop slept
            # is replaced (health-checked before reuse) instead of failing the pass.
            connections_renew()
            try:
                total = outbox_relay_drain(now_due=now, stopping=stopping.is_set)
            except (OperationalError, InterfaceError) as error:
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
            else:
                if failed_passes:
                    logger.warning(
                        "outbox relay: database reachable again after %d failed passes",
                        failed_passes,
                    )
                failed_passes, wait = 0, interval
                self.stdout.write(f"relayed {total}")
                self.stdout.flush()
            if not loop or stopping.wait(wait):
                return
