"""`manage.py inventory_verify`: replay the stock ledger and compare it with every level."""

from django.core.management.base import CommandError

from core.commands import DatabaseCommand
from inventory.selectors import backorder_drift, stock_drift


class Command(DatabaseCommand):
    help = (
        "Replay the stock ledger (sum of movements per level) and compare every bucket of every "
        "stock level with it (on hand, reserved, incoming, unavailable, safety stock), the units "
        "held by reservations with each level's reserved, the units open purchase orders "
        "expect with each level's incoming, and the units back-ordered with each stock "
        "policy's count; list every drift and exit non-zero if there is any."
    )

    def handle(self, *args, **options) -> None:
        drift = [*stock_drift(), *backorder_drift()]
        for found in drift:
            self.stdout.write(str(found))
        if drift:
            raise CommandError(f"{len(drift)} stock figure(s) disagree with the ledger")
        self.stdout.write("stock ledger and levels agree")
