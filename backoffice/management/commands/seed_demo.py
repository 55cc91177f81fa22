"""`manage.py seed_demo`: the demo shop `make run` serves (development only)."""

import time

from backoffice.demo.guard import DevelopmentOnlyCommand
from backoffice.demo.steps import STEPS


class Command(DevelopmentOnlyCommand):
    help = (
        "Create a demo shop: 50 products with pictures and stock in two warehouses, a dozen "
        "customers and a month of orders in every status, with payments, invoices, refunds and "
        "shipments. Running it again changes nothing. Refused with DEBUG off unless --force."
    )

    def handle(self, *args, **options) -> None:
        started = time.monotonic()
        reports = [report for step in STEPS if (report := step()) is not None]
        if not reports:
            self.stdout.write("demo shop already in place; nothing changed")
            return
        for report in reports:
            self.stdout.write(report)
        self.stdout.write(f"demo shop seeded in {time.monotonic() - started:.1f} s")
