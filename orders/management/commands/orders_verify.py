"""`manage.py orders_verify`: order lines against what inventory says they wait for."""

from django.core.management.base import CommandError

from core.commands import DatabaseCommand
from orders.selectors import backordered_lines_drift


class Command(DatabaseCommand):
    help = (
        "Compare each order line's back-ordered units with the units inventory's backorder of "
        "its order and variant waits for (`inventory_verify` checks inventory's own figures); "
        "list every drift and exit non-zero if there is any."
    )

    def handle(self, *args, **options) -> None:
        drift = backordered_lines_drift()
        for found in drift:
            self.stdout.write(found)
        if drift:
            raise CommandError(f"{len(drift)} order line(s) disagree with their backorders")
        self.stdout.write("order lines and backorders agree")
