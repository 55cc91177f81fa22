from django.core.management.base import BaseCommand

from reviews.services import demo_reviews_seed


class Command(BaseCommand):
    help = (
        "Write demo reviews (most approved) from the customers of shipped or delivered demo "
        "orders. Writes nothing without such orders; running it again changes nothing."
    )

    def handle(self, *args, **options) -> None:
        written = demo_reviews_seed()
        self.stdout.write(
            f"demo reviews: {written} written" if written else "demo reviews: nothing to write"
        )
