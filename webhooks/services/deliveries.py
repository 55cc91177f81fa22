"""Deliveries: each attempt claimed, sent and recorded without a transaction held open across
the HTTP request; retried on a schedule of about three days kept in the database.

The schedule lives in the delivery rows, driven by `webhooks.deliveries_dispatch` (beat), not
in Celery countdowns: a countdown of hours sits unacknowledged in a worker's memory, where
the broker's visibility timeout (15 minutes) hands it to another worker again and a restart
of Redis without persistence loses it; a row is visible to staff, survives every restart,
and is claimed by one dispatcher at a time (SKIP LOCKED).
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from outbox.claims import send_once
from outbox.services import outbox_enqueue
from payments.services import webhook_signature
from webhooks import network
from webhooks.models import (
    DeliveryAttempt,
    DeliveryState,
    DisabledNotice,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from webhooks.selectors import deliveries_due

logger = logging.getLogger(__name__)

# The wait after each failed attempt: 13 attempts over about 3 days and 5 hours, quick at
# first (a receiver restarting), then every 10 hours (a receiver down over a weekend).
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    *(timedelta(hours=10),) * 7,
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
# ±20 %, so the deliveries of one outage do not all come back in the same second.
RETRY_JITTER = 0.2
# A requested attempt not claimed by then (its task lost with a broker that restarted without
# persistence) is requested again by the dispatcher.
REQUEST_LEASE = timedelta(minutes=10)
# A claimed attempt not recorded by then (its worker died mid-request) is requested again.
# Above the task's hard time limit, so a live worker is never overtaken.
ATTEMPT_LEASE = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 30)
DISPATCH_BATCH_SIZE = 200
ATTEMPT_TASK = "webhooks.delivery_attempt"
_ERROR_MAX_LENGTH = WebhookDelivery._meta.get_field("last_error").max_length


@dataclass(frozen=True)
class _Outcome:
    status: int | None = None
    excerpt: str = ""
    error: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def delivery_attempt_request(*, delivery_id: int, attempt: int) -> None:
    """Request attempt `attempt` of a delivery through the outbox (published on commit).

    No dedupe key: the attempt number makes a second request of the same attempt a no-op,
    and a request lost after publishing must be re-requestable.
    Requests `webhooks.delivery_attempt`.
    """
    outbox_enqueue(task_name=ATTEMPT_TASK, kwargs={"delivery_id": delivery_id, "attempt": attempt})


def signature_header(*, endpoint: WebhookEndpoint, body: bytes, timestamp: int) -> str:
    """`Stockwire-Signature` for `body`: one `v1=` per secret that signs now (the current
    one, and the previous one during a rotation's grace period)."""
    header = webhook_signature(body=body, secret=endpoint.secret, timestamp=timestamp)
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires and expires > timezone.now():
        previous = webhook_signature(
            body=body, secret=endpoint.previous_secret, timestamp=timestamp
        )
        header += "," + previous.split(",", 1)[1]
    return header


def event_body(event: WebhookEvent) -> bytes:
    """The bytes every attempt of `event` sends (keys sorted: the same body each time)."""
    return json.dumps(event.payload, sort_keys=True, separators=(",", ":")).encode()


def delivery_attempt(*, delivery_id: int, attempt: int) -> str | None:
    """Make attempt number `attempt` of a delivery: claim it, POST it, record the outcome.

    Returns the delivery's state afterwards, or None when this attempt is not to be made (made
    already, the delivery finished, or its endpoint inactive): a task run twice sends once.
    The claim and the record are two short transactions; the request in between holds none.
    Sends no signals; when the last attempt fails and the endpoint has failed all along,
    disables it and requests `webhooks.endpoint_disabled_notify`.
    """
    delivery = _claimed(delivery_id=delivery_id, attempt=attempt)
    if delivery is None:
        return None
    body = event_body(delivery.event)
    headers = {
        "Content-Type": "application/json",
        "Stockwire-Signature": signature_header(
            endpoint=delivery.endpoint, body=body, timestamp=int(time.time())
        ),
        "Stockwire-Event-Id": str(delivery.event_id),
        "Stockwire-Event-Type": delivery.event.type,
    }
    started = time.monotonic()
    try:
        reply = network.post(url=delivery.endpoint.url, body=body, headers=headers)
    except network.Refused as error:
        outcome = _Outcome(error=f"refused: {error}")
    except TimeoutError as error:
        outcome = _Outcome(error=f"timeout: {error}")
    except (OSError, http.client.HTTPException, ValueError) as error:
        outcome = _Outcome(error=f"{type(error).__name__}: {error}")
    else:
        outcome = _Outcome(status=reply.status, excerpt=reply.excerpt)
    latency_ms = round((time.monotonic() - started) * 1000)
    return _recorded(delivery=delivery, attempt=attempt, outcome=outcome, latency_ms=latency_ms)


def _claimed(*, delivery_id: int, attempt: int) -> WebhookDelivery | None:
    """Take attempt `attempt` for this worker, or return None when it is not there to take.

    A guarded UPDATE on the row's own columns: of two workers given the same attempt, the
    second finds `attempts` moved on and updates nothing. The lease makes the dispatcher ask
    for the next attempt if this worker dies before recording.
    """
    delivery = (
        WebhookDelivery.objects.select_related("event", "endpoint").filter(pk=delivery_id).first()
    )
    if (
        delivery is None
        or delivery.state != DeliveryState.PENDING
        or delivery.attempts != attempt - 1
        or not delivery.endpoint.active
    ):
        return None
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, state=DeliveryState.PENDING, attempts=attempt - 1
    ).update(attempts=attempt, next_attempt_at=now + ATTEMPT_LEASE, updated_at=now)
    return delivery if claimed == 1 else None


def _retry_wait(attempt: int) -> timedelta:
    return RETRY_SCHEDULE[attempt - 1] * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)


@transaction.atomic
def _recorded(
    *, delivery: WebhookDelivery, attempt: int, outcome: _Outcome, latency_ms: int
) -> str:
    now = timezone.now()
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=attempt,
        status_code=outcome.status,
        latency_ms=latency_ms,
        response_excerpt=outcome.excerpt.replace("\x00", "\ufffd"),
        error=outcome.error[:_ERROR_MAX_LENGTH],
        created_at=now,
    )
    if outcome.succeeded:
        state, next_attempt_at = DeliveryState.SUCCEEDED, None
    elif attempt >= MAX_ATTEMPTS:
        state, next_attempt_at = DeliveryState.FAILED, None
    else:
        state, next_attempt_at = DeliveryState.PENDING, now + _retry_wait(attempt)
    WebhookDelivery.objects.filter(pk=delivery.pk, attempts=attempt).update(
        state=state,
        next_attempt_at=next_attempt_at,
        finished_at=None if state == DeliveryState.PENDING else now,
        last_status_code=outcome.status,
        last_error=outcome.error[:_ERROR_MAX_LENGTH],
        updated_at=now,
    )
    endpoints = WebhookEndpoint.objects.filter(pk=delivery.endpoint_id)
    if outcome.succeeded:
        endpoints.filter(failing_since__isnull=False).update(failing_since=None)
    else:
        endpoints.filter(failing_since__isnull=True).update(failing_since=now)
    if state == DeliveryState.FAILED:
        _disable_if_failing_throughout(delivery=delivery, now=now)
    return state


def _disable_if_failing_throughout(*, delivery: WebhookDelivery, now: datetime) -> None:
    """Disable the endpoint if no attempt succeeded since this delivery's first one: it has
    then failed for the whole retry window. Managers are told by e-mail, once."""
    first_attempt_at = (
        DeliveryAttempt.objects.filter(delivery=delivery, number=1)
        .values_list("created_at", flat=True)
        .first()
    )
    if first_attempt_at is None:
        return
    reason = (
        f"every attempt failed from {first_attempt_at:%Y-%m-%d %H:%M} to {now:%Y-%m-%d %H:%M} UTC"
    )
    disabled = WebhookEndpoint.objects.filter(
        pk=delivery.endpoint_id, active=True, failing_since__lte=first_attempt_at
    ).update(
        active=False,
        disabled_at=now,
        disabled_reason=reason,
        updated_at=now,
    )
    if not disabled:
        return
    endpoint = delivery.endpoint
    audit_record(
        action=AuditAction.UPDATE, obj=endpoint, changes={"active": [True, False]}, actor=None
    )
    outbox_enqueue(
        task_name="webhooks.endpoint_disabled_notify",
        kwargs={"endpoint_id": endpoint.pk},
        dedupe_key=f"webhooks:disabled:{endpoint.pk}:{now.isoformat()}",
    )


def deliveries_dispatch() -> int:
    """Request the next attempt of every delivery that is due; return how many were requested.

    Batch after batch, each its own short transaction (rows claimed with SKIP LOCKED, so
    dispatchers on several hosts never request the same attempt twice). A requested row is
    leased for REQUEST_LEASE: the next run leaves it to its task.
    Sends no signals; requests `webhooks.delivery_attempt` per due delivery.
    """
    total = 0
    while True:
        requested = _dispatch_batch()
        total += requested
        if requested < DISPATCH_BATCH_SIZE:
            return total


@transaction.atomic
def _dispatch_batch() -> int:
    now = timezone.now()
    due = list(deliveries_due(now=now, limit=DISPATCH_BATCH_SIZE))
    for delivery in due:
        delivery_attempt_request(delivery_id=delivery.pk, attempt=delivery.attempts + 1)
    WebhookDelivery.objects.filter(pk__in=[delivery.pk for delivery in due]).update(
        next_attempt_at=now + REQUEST_LEASE, updated_at=now
    )
    return len(due)


def _redeliver(
    *, event_ids: Iterable, endpoint: WebhookEndpoint, resend_of: WebhookDelivery | None = None
) -> list[WebhookDelivery]:
    """Write a new delivery of each event to `endpoint` and request its first attempt."""
    now = timezone.now()
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            event_id=event_id,
            endpoint=endpoint,
            next_attempt_at=now + REQUEST_LEASE,
            resend_of=resend_of,
            created_at=now,
        )
        for event_id in event_ids
    )
    for delivery in deliveries:
        delivery_attempt_request(delivery_id=delivery.pk, attempt=1)
    return deliveries


class ResendRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def _check_resendable(endpoint: WebhookEndpoint) -> None:
    if not endpoint.active:
        raise ResendRefused("endpoint_inactive", f"{endpoint} is inactive: activate it first")


@transaction.atomic
def delivery_resend(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery's event to its endpoint again, as a new delivery with a fresh schedule
    (the receiver dedupes by the event id, which stays the same).

    Raises ResendRefused for a delivery still pending (it is on its way) or an inactive
    endpoint. Sends no signals; requests `webhooks.delivery_attempt`.
    """
    _check_resendable(delivery.endpoint)
    if delivery.state == DeliveryState.PENDING:
        raise ResendRefused("delivery_pending", "it is still being delivered")
    [resent] = _redeliver(
        event_ids=[delivery.event_id], endpoint=delivery.endpoint, resend_of=delivery
    )
    return resent


@transaction.atomic
def endpoint_resend_since(*, endpoint: WebhookEndpoint, since: datetime) -> int:
    """Send `endpoint` every recorded event of a type it subscribes to from `since` (and not
    before it was created) again; return how many.

    Events still pending for it are left to their delivery. Events are recorded only while
    some active endpoint subscribes to their type. Raises ResendRefused for an inactive
    endpoint. Sends no signals; requests `webhooks.delivery_attempt` per event.
    """
    _check_resendable(endpoint)
    events = (
        WebhookEvent.objects.filter(
            type__in=endpoint.events, created_at__gte=max(since, endpoint.created_at)
        )
        .exclude(
            Exists(
                WebhookDelivery.objects.filter(
                    event=OuterRef("pk"), endpoint=endpoint, state=DeliveryState.PENDING
                )
            )
        )
        .order_by("created_at", "id")
        .values_list("pk", flat=True)
    )
    return len(_redeliver(event_ids=list(events), endpoint=endpoint))


def _manager_emails() -> list[str]:
    """Those who may manage endpoints, or the staff alert list when none has an address."""
    managers = (
        get_user_model()
        .objects.with_perm("webhooks.change_webhookendpoint", include_superusers=True)
        .exclude(email="")
        .order_by("email")
        .values_list("email", flat=True)
    )
    return list(dict.fromkeys(managers)) or list(settings.STAFF_ALERT_EMAILS)


def endpoint_disabled_notice_send(*, endpoint_id: int) -> bool:
    """E-mail the managers that an endpoint was disabled; return whether sent.

    Through `outbox.claims.send_once` with a DisabledNotice per disabling: claimed in one
    short transaction, sent with none open, marked in another, so a task delivered twice
    e-mails once and a failed send is retried. An endpoint re-activated meanwhile is not
    reported. Call outside a transaction (a task's body).
    """
    endpoint = (
        WebhookEndpoint.objects.filter(pk=endpoint_id, active=False)
        .exclude(disabled_at=None)
        .first()
    )
    recipients = _manager_emails()
    if endpoint is None or not recipients:
        return False
    return send_once(
        model=DisabledNotice,
        lookup={"endpoint": endpoint, "disabled_at": endpoint.disabled_at},
        send=partial(
            send_mail,
            subject=f"Webhook endpoint disabled: {endpoint}",
            message=(
                f"The webhook endpoint {endpoint.url} ({endpoint.description or 'no description'}) "
                f"was disabled: {endpoint.disabled_reason}.\n"
                "Its receiver answered no delivery with a 2xx for the whole retry window. Fix the "
                "receiver, activate the endpoint again in the admin, and resend what it missed "
                "(the endpoint's 'Resend deliveries since…' action).\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=recipients,
        ),
    )
