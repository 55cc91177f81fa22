"""Storefront reads: who holds a token, whose credentials these are."""

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Case, Q, When
from django.utils import timezone

from orders.services import user_email_normalise
from storefront.models import ApiToken


def token_user(*, raw: str) -> AbstractBaseUser | None:
    """Return the active user holding the live token `raw`, in one query (None otherwise).

    The user's customer profile comes in the same query: most authenticated requests (placing
    and reading orders) need it next.
    """
    token = (
        ApiToken.objects.select_related("user__customer")
        .filter(
            key_hash=ApiToken.hash_of(raw),
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
            user__is_active=True,
        )
        .first()
    )
    return token.user if token else None


def user_for_credentials(*, email: str, password: str) -> AbstractBaseUser | None:
    """Return the active user with this e-mail and password, or None.

    A customer's username is their normalised e-mail; a staff member's may not be, so the
    e-mail column is the fallback. A miss still runs the password hasher, so response time
    does not tell which e-mails have accounts.
    """
    email = user_email_normalise(email)
    user_model = get_user_model()
    user = (
        user_model.objects.filter(Q(username=email) | Q(email__iexact=email))
        .order_by(Case(When(username=email, then=0), default=1), "pk")
        .first()
    )
    if user is None:
        user_model().set_password(password)
        return None
    if not user.check_password(password) or not user.is_active:
        return None
    return user
