"""Storefront reads: who holds a token, whose credentials these are."""

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Case, Q, QuerySet, When
from django.utils import timezone

from orders.models import Customer
from orders.services import user_email_normalise
from storefront.models import ApiToken

_TOKEN_USER_SQL = (
    "SELECT u.*, c.id AS customer_pk "
    f"FROM {ApiToken._meta.db_table} t "
    f"JOIN {get_user_model()._meta.db_table} u ON u.id = t.user_id "
    f"LEFT JOIN {Customer._meta.db_table} c ON c.user_id = u.id "
    "WHERE t.key_hash = %s AND t.revoked_at IS NULL AND t.expires_at > %s AND u.is_active"
)


def token_user(*, raw: str) -> AbstractBaseUser | None:
    """Return the active user holding the live token `raw`, in one query (None otherwise).

    The user's customer profile comes in the same query: most authenticated requests (placing
    and reading orders) need it next. Written out because every authenticated request runs
    it: the ORM's compilation of the token-user-customer join and its three model instances
    cost several times the query. The profile is attached with only its id and user loaded
    (its counters load on first use, as after `.only()`).
    """
    users = list(
        get_user_model().objects.raw(_TOKEN_USER_SQL, [ApiToken.hash_of(raw), timezone.now()])
    )
    if not users:
        return None
    user = users[0]
    if user.customer_pk is not None:
        # Half-loaded, as after `.only("id", "user_id")`: enough to place and read orders; its
        # counters load on first read. Never save() it (counters move only by F() bumps).
        user.customer = Customer.from_db(
            user._state.db, ["id", "user_id"], [user.customer_pk, user.pk]
        )
    return user


def users_with_email(*, email: str) -> QuerySet:
    """Users whose username or e-mail is the normalised `email`, in either case.

    A customer's username is their e-mail; a staff member's may not be, so the e-mail column
    counts too: an address is taken when any user holds it in either column.
    """
    return get_user_model().objects.filter(Q(username__iexact=email) | Q(email__iexact=email))


def user_for_credentials(*, email: str, password: str) -> AbstractBaseUser | None:
    """Return the active user with this e-mail and password, or None.

    Registration refuses an e-mail any user holds, but users created before that rule, or
    by staff in the admin, may share one; each candidate's password is checked, so one
    account's wrong password never shadows another's right one (the username match first).
    A miss still runs the password hasher, so response time does not tell which e-mails have
    accounts.
    """
    email = user_email_normalise(email)
    candidates = list(
        users_with_email(email=email)
        .filter(is_active=True)
        .order_by(Case(When(username=email, then=0), default=1), "pk")
    )
    for user in candidates:
        if user.check_password(password):
            return user
    if not candidates:
        get_user_model()().set_password(password)
    return None
