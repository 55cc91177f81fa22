"""Webhooks' Celery tasks: idempotent, they take ids and call webhooks services."""

from celery import shared_task

from core.retries import EMAIL_RETRY
from webhooks import services


@shared_task(name="webhooks.delivery_attempt", ignore_result=True)
def delivery_attempt(*, delivery_id: int, attempt: int) -> str | None:
    """POST one attempt of a delivery (requested through the outbox when an event is written
    and by the dispatcher when a retry is due). The attempt number makes a second run a
    no-op. Not retried by Celery: the delivery row holds the retry schedule."""
    return services.delivery_attempt(delivery_id=delivery_id, attempt=attempt)


@shared_task(name="webhooks.deliveries_dispatch", ignore_result=True)
def deliveries_dispatch() -> int:
    """Request the attempts that are due (beat, every 15 seconds)."""
    return services.deliveries_dispatch()


@shared_task(name="webhooks.changes_emit", ignore_result=True)
def changes_emit() -> int:
    """Emit the coalesced stock.changed and product.updated events (beat, every 30 seconds)."""
    return services.changes_emit()


@shared_task(name="webhooks.prune", ignore_result=True)
def prune() -> int:
    """Delete finished events past their retention with their delivery logs (beat, daily)."""
    return services.events_prune()


@shared_task(name="webhooks.endpoint_disabled_notify", ignore_result=True, **EMAIL_RETRY)
def endpoint_disabled_notify(*, endpoint_id: int) -> bool:
    """E-mail the managers that an endpoint was disabled (retried on SMTP failures)."""
    return services.endpoint_disabled_notice_send(endpoint_id=endpoint_id)
