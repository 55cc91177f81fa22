"""Endpoints: who receives the shop's events, and the secrets that sign them."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webhooks import network
from webhooks.models import EventType, WebhookEndpoint

SECRET_PREFIX = "whsec_"


class EndpointInvalid(Exception):
    """An endpoint that cannot be saved: `code` is `url_refused` or `events_invalid`."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def secret_new() -> str:
    """A fresh signing secret: 256 random bits, prefixed so it is recognised if it leaks."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def endpoint_url_check(url: str) -> None:
    """Raise EndpointInvalid unless the shop may deliver to `url` now.

    The same check every delivery makes (https, and every address the host resolves to
    outside the denied networks); here it spares staff an endpoint that could never receive,
    while the check at delivery time is the guard, since DNS answers change.
    """
    try:
        network.url_target(url)
    except network.Refused as error:
        raise EndpointInvalid("url_refused", str(error)) from error


def endpoint_events_clean(events: Iterable[str]) -> list[str]:
    """Return the event types in their documented order; raise EndpointInvalid for an empty
    or unknown one."""
    wanted = set(events)
    unknown = sorted(wanted - set(EventType.values))
    if unknown:
        raise EndpointInvalid("events_invalid", f"unknown event types: {', '.join(unknown)}")
    if not wanted:
        raise EndpointInvalid("events_invalid", "subscribe to at least one event type")
    return [event_type for event_type in EventType.values if event_type in wanted]


@transaction.atomic
def endpoint_create(
    *,
    url: str,
    events: Iterable[str],
    description: str = "",
    active: bool = True,
    created_by=None,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; return it with its signing secret, to be shown to the user once.

    Raises EndpointInvalid. Sends no custom signals (post_save forgets this process's copy of
    the subscriptions); requests no tasks.
    """
    endpoint_url_check(url)
    secret = secret_new()
    endpoint = WebhookEndpoint.objects.create(
        url=url,
        events=endpoint_events_clean(events),
        description=description,
        active=active,
        secret=secret,
        created_by=created_by,
    )
    return endpoint, secret


@transaction.atomic
def endpoint_update(
    *, endpoint: WebhookEndpoint, url: str, events: Iterable[str], description: str, active: bool
) -> WebhookEndpoint:
    """Change an endpoint's URL, events, description or state.

    A changed URL is checked again. Activating a disabled endpoint clears its failure record,
    so the retry window starts afresh. Raises EndpointInvalid. Sends no custom signals;
    requests no tasks.
    """
    stored = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if url != stored.url:
        endpoint_url_check(url)
    stored.url = url
    stored.events = endpoint_events_clean(events)
    stored.description = description
    if active and not stored.active:
        stored.failing_since = None
        stored.disabled_at = None
        stored.disabled_reason = ""
    stored.active = active
    stored.save()
    return stored


@transaction.atomic
def endpoint_secret_rotate(*, endpoint: WebhookEndpoint) -> str:
    """Give the endpoint a new signing secret and return it (to be shown once).

    The secret it replaces keeps signing beside it for WEBHOOK_SECRET_GRACE_HOURS, so the
    receiver can switch without losing an event; a second rotation within that time retires
    the oldest at once. Sends no custom signals; requests no tasks.
    """
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    now = timezone.now()
    secret = secret_new()
    locked.previous_secret = locked.secret
    locked.previous_secret_expires_at = now + timedelta(hours=settings.WEBHOOK_SECRET_GRACE_HOURS)
    locked.secret = secret
    locked.secret_rotated_at = now
    locked.save(
        update_fields=[
            "previous_secret",
            "previous_secret_expires_at",
            "secret",
            "secret_rotated_at",
            "updated_at",
        ]
    )
    endpoint.refresh_from_db()
    return secret
