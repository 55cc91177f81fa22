"""`manage.py outbox_relay [--loop] [--now]`: publish what the broker has not taken yet."""

import time

from django.core.management.base import BaseCommand, CommandParser

from outbox.services import RELAY_BATCH_SIZE, outbox_relay

LOOP_INTERVAL_SECONDS = 5


class Command(BaseCommand):
    help = (
        "Publish unsent outbox rows to the broker. Without --loop, one pass until nothing is "
        "due; with --loop, every few seconds until stopped (a relay without beat)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep relaying until stopped")
        parser.add_argument(
            "--now",
            action="store_true",
            help="ignore the grace period and each row's backoff (the broker was just fixed)",
        )
        parser.add_argument("--interval", type=float, default=LOOP_INTERVAL_SECONDS)

    def handle(self, *args, loop: bool, now: bool, interval: float, **options) -> None:
        while True:
            total = self._drain(now_due=now)
            self.stdout.write(f"relayed {total}")
            if not loop:
                return
            time.sleep(interval)

    @staticmethod
    def _drain(*, now_due: bool) -> int:
        """Relay batch after batch until a batch comes back short (nothing more is due)."""
        total = 0
        while True:
            published = outbox_relay(now_due=now_due)
            total += published
            if published < RELAY_BATCH_SIZE:
                return total
