"""Customer profiles and the normalised identity of their users."""

from orders.models import Customer


def user_email_normalise(email: str) -> str:
    """Return the canonical form of an e-mail: trimmed and lower-cased, so logins match."""
    return (email or "").strip().lower()


def customer_for_user(*, user) -> Customer:
    """Return the user's Customer profile, creating it if the post_save receiver never ran
    (users loaded from fixtures, created before the orders app existed).

    A profile loaded with the user (`select_related("customer")`, or attached by
    `storefront.selectors.token_user`) costs no query.
    Not atomic itself: every request placing an order calls it, and get_or_create already
    takes a savepoint for the rare creation. Sends no signals, requests no tasks.
    """
    try:
        return user.customer
    except Customer.DoesNotExist:
        customer, _ = Customer.objects.get_or_create(user=user)
        return customer
