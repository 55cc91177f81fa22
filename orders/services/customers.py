"""Customer profiles and the normalised identity of their users."""

from django.db import transaction

from orders.models import Customer


def user_email_normalise(email: str) -> str:
    """Return the canonical form of an e-mail: trimmed and lower-cased, so logins match."""
    return (email or "").strip().lower()


@transaction.atomic
def customer_for_user(*, user) -> Customer:
    """Return the user's Customer profile, creating it if the post_save receiver never ran
    (users loaded from fixtures, created before the orders app existed).

    Sends no signals, requests no tasks.
    """
    customer, _ = Customer.objects.get_or_create(user=user)
    return customer
