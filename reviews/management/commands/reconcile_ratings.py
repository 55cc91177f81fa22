from core.commands import DatabaseCommand
from reviews.services import ratings_reconcile


class Command(DatabaseCommand):
    help = "Recount product ratings and reviews' helpful votes and repair any drift."

    def handle(self, *args, **options) -> None:
        repaired = ratings_reconcile()
        self.stdout.write(f"{repaired} rating rows repaired")
