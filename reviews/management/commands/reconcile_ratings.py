from django.core.management.base import BaseCommand

from reviews.services import ratings_reconcile


class Command(BaseCommand):
    help = "Recount product ratings and reviews' helpful votes and repair any drift."

    def handle(self, *args, **options) -> None:
        repaired = ratings_reconcile()
        self.stdout.write(f"{repaired} rating rows repaired")
