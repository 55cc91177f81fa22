"""Storefront writes: customer registration, API tokens and idempotency keys.

Tokens are opaque random strings; only their SHA-256 is stored, so a leaked table leaks no
usable token. Idempotency keys remember the first answer to a `POST /orders` per user; the
unique constraint on (user, key) decides between concurrent duplicates.
"""

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from core.sql import insert_instances
from orders.selectors import users_with_email
from orders.services import user_email_normalise
from storefront.models import ApiToken, IdempotencyKey
from storefront.signals import token_revoked

# PostgreSQL's SQLSTATE for a lock wait cut short by `lock_timeout`.
LOCK_NOT_AVAILABLE = "55P03"
# Long enough that no client sensibly retries later, short enough to bound the table.
IDEMPOTENCY_KEY_LIFETIME = timedelta(hours=24)


class RegistrationInvalid(Exception):
    """The e-mail or password is not acceptable; `errors` lists `{field, message}`."""

    code = "validation_error"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("The registration is invalid.")
        self.errors = errors


class EmailTaken(Exception):
    code = "email_taken"

    def __init__(self) -> None:
        super().__init__("An account with this e-mail exists; log in instead.")


class IdempotencyKeyReused(Exception):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was used with another request body.")


class RequestInProgress(Exception):
    code = "request_in_progress"

    def __init__(self) -> None:
        super().__init__("A request with this Idempotency-Key is still running; retry shortly.")


@transaction.atomic
def token_issue(*, user: AbstractBaseUser) -> str:
    """Create a token for `user` and return it; this is the only time it exists in clear.

    Sends no signals, requests no tasks.
    """
    raw = secrets.token_urlsafe(32)
    ApiToken.objects.create(
        user=user,
        key_hash=ApiToken.hash_of(raw),
        expires_at=timezone.now() + timedelta(days=settings.API_TOKEN_TTL_DAYS),
    )
    return raw


@transaction.atomic
def token_revoke(*, raw: str) -> int:
    """Revoke the token `raw` (idempotently); return how many rows changed.

    Sends token_revoked when it revoked one (its user's sockets close at once); requests no
    tasks.
    """
    token = ApiToken.objects.filter(key_hash=ApiToken.hash_of(raw), revoked_at__isnull=True)
    # Locked, so of two concurrent revocations only one revokes and tells.
    user_id = token.select_for_update().values_list("user_id", flat=True).first()
    if user_id is None:
        return 0
    token.update(revoked_at=timezone.now())
    token_revoked.send(sender=ApiToken, user_id=user_id)
    return 1


@transaction.atomic
def customer_register(*, email: str, password: str) -> tuple[AbstractBaseUser, str]:
    """Create a user whose username is the normalised e-mail, with a hashed password, and its
    first token (returned in clear), in one transaction.

    Raises RegistrationInvalid listing every problem (Django's password validators included)
    and EmailTaken when any user holds the e-mail as username or e-mail (a staff member's
    included, whose log-in it would otherwise share), also when a concurrent registration wins.
    Sends no custom signals (saving the user sends post_save, on which the orders app creates
    the customer profile), requests no tasks.
    """
    user_model = get_user_model()
    email = user_email_normalise(email)
    errors = []
    # Lower-casing can lengthen an address ('İ' becomes two characters), so the schema's limit
    # on what was sent does not bound what would be stored as username and e-mail.
    max_length = min(user_model._meta.get_field(name).max_length for name in ("username", "email"))
    if len(email) > max_length:
        message = f"Ensure this value has at most {max_length} characters once lower-cased."
        errors.append({"field": "email", "message": message})
    else:
        try:
            validate_email(email)
        except DjangoValidationError as error:
            errors += [{"field": "email", "message": message} for message in error.messages]
    candidate = user_model(username=email, email=email)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as error:
        errors += [{"field": "password", "message": message} for message in error.messages]
    if errors:
        raise RegistrationInvalid(errors)
    if users_with_email(email=email).exists():
        raise EmailTaken()
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError as error:
        raise EmailTaken() from error
    return candidate, token_issue(user=candidate)


def request_fingerprint(*, method: str, path: str, payload: Any) -> str:
    """SHA-256 of what makes two requests "the same": method, path and the parsed body."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class IdempotentAnswer:
    status: int
    body: Any
    replayed: bool


# `perform` receives this and calls it inside its own transaction with the answer it will give.
RecordAnswer = Callable[[int, Any], None]


def _stored_answer(
    *, user: AbstractBaseUser, key: str, fingerprint: str
) -> IdempotentAnswer | None:
    existing = IdempotencyKey.objects.filter(user=user, key=key).first()
    if existing is None:
        return None
    if existing.fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    return IdempotentAnswer(existing.status_code, existing.response_body, replayed=True)


def idempotent_perform(
    *,
    user: AbstractBaseUser,
    key: str,
    fingerprint: str,
    perform: Callable[[RecordAnswer], tuple[int, Any]],
    refusals: tuple[type[Exception], ...] = (),
) -> IdempotentAnswer:
    """Run `perform(record)` once per (user, key) and return its answer, or replay the stored one.

    `perform` calls `record(status, body)` inside its own transaction with the answer it is
    about to give, so the key row commits or rolls back with the work: a request that fails
    leaves no key and may be retried with it.

    Optimistic: nearly every key arrives once, so nothing is looked up first. A key used before
    shows as the unique (user, key) violation of `record`'s INSERT, which rolls the repeated work
    back before any stock is reserved, and the stored answer is replayed. On PostgreSQL a
    concurrent duplicate's INSERT waits on the unique index until the first request commits,
    then does the same; a wait on the key beyond the connection's `lock_timeout` answers
    RequestInProgress (any other lock wait past it propagates: the API answers 503). A repeat
    refused before `record` runs (one of `refusals`, the domain's answers such as a SKU
    withdrawn since) is checked against the stored answer too, so it still gets the first
    answer; any other error propagates as it is.
    Raises IdempotencyKeyReused when the key came with another body.
    Sends no signals and requests no tasks itself; `perform` sends and requests what it does.
    """

    def record(status: int, body: Any) -> None:
        # Part of every checkout: written without the ORM's compiler, as the order is.
        try:
            insert_instances(
                [
                    IdempotencyKey(
                        user=user,
                        key=key,
                        fingerprint=fingerprint,
                        status_code=status,
                        response_body=body,
                    )
                ]
            )
        except OperationalError as error:
            # Only a wait on this key is "in progress"; a lock wait elsewhere (stock rows
            # behind an import) is a database that did not answer in time: a 503.
            if getattr(error.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            raise RequestInProgress() from error

    try:
        status, body = perform(record)
    except IntegrityError:
        stored = _stored_answer(user=user, key=key, fingerprint=fingerprint)
        if stored is None:
            raise
        return stored
    except refusals:
        stored = _stored_answer(user=user, key=key, fingerprint=fingerprint)
        if stored is None:
            raise
        return stored
    return IdempotentAnswer(status, body, replayed=False)


def idempotent_answer_amend(*, user: AbstractBaseUser, key: str, body: Any) -> None:
    """Replace the answer recorded for (user, key) by `perform`, in its transaction: what the
    work learnt after recording it (an order's back-ordered lines) is what a replay answers.
    Sends no signals and requests no tasks."""
    IdempotencyKey.objects.filter(user=user, key=key).update(response_body=body)


@transaction.atomic
def idempotency_keys_purge(*, older_than: timedelta = IDEMPOTENCY_KEY_LIFETIME) -> int:
    """Delete keys older than `older_than`; return how many went.

    Sends no signals, requests no tasks.
    """
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
