from core.commands import DatabaseCommand
from orders.services import counters_reconcile


class Command(DatabaseCommand):
    help = "Recompute the derived sales counters from orders and repair any drift."

    def handle(self, *args, **options) -> None:
        repaired = counters_reconcile()
        self.stdout.write(f"{repaired} counter rows repaired")
