from django.core.management.base import BaseCommand

from orders.services import counters_reconcile


class Command(BaseCommand):
    help = "Recompute the derived sales counters from orders and repair any drift."

    def handle(self, *args, **options) -> None:
        repaired = counters_reconcile()
        self.stdout.write(f"{repaired} counter rows repaired")
