"""Celery tasks of the orders app: idempotent, take ids, call services."""

from celery import shared_task

from core.retries import EMAIL_RETRY
from orders import services


@shared_task(name="orders.email_send", ignore_result=True, **EMAIL_RETRY)
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


@shared_task(name="orders.backorders_sweep", ignore_result=True)
def backorders_sweep() -> int:
    """Serve the backorders that free units can serve now, oldest first (beat, every minute):
    what a failed or missed allocation after a commit left waiting."""
    return services.order_backorders_sweep()
