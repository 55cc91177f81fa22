"""Celery tasks of the orders app: idempotent, take ids, call services."""

from smtplib import SMTPException

from celery import shared_task

from orders import services

# An SMTP outage of about an hour is ridden out: retries 1, 2, 4 … 600 s apart, with jitter.
EMAIL_MAX_RETRIES = 10


@shared_task(
    name="orders.email_send",
    ignore_result=True,
    autoretry_for=(SMTPException, OSError),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=EMAIL_MAX_RETRIES,
)
def order_email_send(
    order_id: int, kind: str, reference: str = "", context: dict[str, str] | None = None
) -> bool:
    """Send one order e-mail once (a copy of this task that runs again sends nothing)."""
    return services.order_email_send(
        order_id=order_id, kind=kind, reference=reference, context=context
    )


@shared_task(name="orders.expire_unpaid", ignore_result=True)
def orders_expire_unpaid() -> int:
    """Cancel orders unpaid after the reservation TTL and release their stock (beat)."""
    return services.orders_expire_unpaid()


@shared_task(name="orders.counters_reconcile", ignore_result=True)
def counters_reconcile() -> int:
    """Recompute the derived sales counters from orders and repair drift (beat, nightly)."""
    return services.counters_reconcile()
