"""`manage.py outbox_relay [--loop] [--now]`: publish what the broker has not taken yet."""

import signal
import threading

from django.core.management.base import BaseCommand, CommandParser

from outbox.services import outbox_relay_drain

LOOP_INTERVAL_SECONDS = 5


class Command(BaseCommand):
    help = (
        "Publish unsent outbox rows to the broker. Without --loop, one pass that tries every "
        "due row once; with --loop, such a pass every few seconds until stopped (a relay "
        "without beat). SIGTERM or Ctrl-C stops the loop after the batch in hand."
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
        while True:
            total = outbox_relay_drain(now_due=now, stopping=stopping.is_set)
            self.stdout.write(f"relayed {total}")
            self.stdout.flush()
            if not loop or stopping.wait(interval):
                return
