"""Storefront reads: who holds a token, whose credentials these are."""

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Case, When
from django.db.models.sql import Query
from django.utils import timezone

from orders.models import Customer
from orders.selectors import users_with_email
from orders.services import user_email_normalise
from storefront.models import ApiToken

# The user's columns in model order, then the customer profile's id.
_USER_FIELDS = get_user_model()._meta.concrete_fields
_TOKEN_USER_SQL = (
    f"SELECT {', '.join(f'u.{field.column}' for field in _USER_FIELDS)}, c.id "
    f"FROM {ApiToken._meta.db_table} t "
    f"JOIN {get_user_model()._meta.db_table} u ON u.id = t.user_id "
    f"LEFT JOIN {Customer._meta.db_table} c ON c.user_id = u.id "
    "WHERE t.key_hash = %s AND t.revoked_at IS NULL AND t.expires_at > %s AND u.is_active"
)


# Per database alias (a few per process): working the converters out costs as much as the query.
_converters_of: dict[str, dict] = {}


def _user_converters(alias: str, connection: BaseDatabaseWrapper) -> dict:
    """{position: (converters, column)} turning the user's columns into field values on the
    `alias` database, as the ORM's compiler applies them (none for these fields on PostgreSQL;
    on SQLite booleans and datetimes). They depend on the backend and the alias' settings
    only, so one thread's serve every thread's connection to that alias."""
    if alias not in _converters_of:
        user_model = get_user_model()
        compiler = Query(user_model).get_compiler(connection=connection)
        columns = [field.get_col(user_model._meta.db_table) for field in _USER_FIELDS]
        _converters_of[alias] = compiler.get_converters(columns)
    return _converters_of[alias]


def token_user(*, raw: str) -> AbstractBaseUser | None:
    """Return the active user holding the live token `raw`, in one query (None otherwise).

    The user's customer profile comes in the same query: most authenticated requests (placing
    and reading orders) need it next. Written out, and read with a cursor into `from_db`
    rather than through `raw()`, because every authenticated request runs it: the ORM's
    compilation of the token-user-customer join, and then `raw()`'s per-query column mapping,
    cost several times the query (bench/README.md, "The CPU case"). The fields'
    own converters still run (SQLite stores booleans and datetimes as numbers and text). The
    profile is attached with only its id and user loaded (its counters load on first use, as
    after `.only()`).
    """
    user_model, fields = get_user_model(), _USER_FIELDS
    alias = router.db_for_read(user_model)
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(_TOKEN_USER_SQL, [ApiToken.hash_of(raw), timezone.now()])
        row = cursor.fetchone()
    if row is None:
        return None
    values, customer_pk = list(row[:-1]), row[-1]
    for position, (converters, column) in _user_converters(alias, connection).items():
        for converter in converters:
            values[position] = converter(values[position], column, connection)
    user = user_model.from_db(alias, [field.attname for field in fields], values)
    if customer_pk is not None:
        # Half-loaded, as after `.only("id", "user_id")`: enough to place and read orders; its
        # counters load on first read. Never save() it (counters move only by F() bumps).
        user.customer = Customer.from_db(alias, ["id", "user_id"], [customer_pk, user.pk])
    return user


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
