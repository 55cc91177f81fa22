"""`manage.py inventory_verify`: replay the stock ledger and compare it with every level."""

from django.core.management.base import BaseCommand, CommandError

from inventory.selectors import stock_drift


class Command(BaseCommand):
    help = (
        "Replay the stock ledger (sum of movements per level) and compare it with every stock "
        "level, and the units held by reservations with each level's reserved; list every "
        "drift and exit non-zero if there is any."
    )

    def handle(self, *args, **options) -> None:
        drift = stock_drift()
        for level in drift:
            self.stdout.write(str(level))
        if drift:
            raise CommandError(f"{len(drift)} stock level(s) disagree with the ledger")
        self.stdout.write("stock ledger and levels agree")
