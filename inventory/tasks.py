"""Inventory's Celery tasks: idempotent, they take ids and call inventory code."""

from celery import shared_task

from core.retries import EMAIL_RETRY
from inventory import alerts


@shared_task(name="inventory.low_stock_alert", ignore_result=True, **EMAIL_RETRY)
def low_stock_alert(*, variant_id: int, day: str | None = None) -> bool:
    """E-mail staff that a variant runs low (requested on commit by the `stock_low` receiver,
    `day` the day it fell; None in requests from before the day was carried: today).

    Retried like every e-mail (SMTP, network and database failures, for about an hour); a
    failure not ridden out is parked as a TaskFailure for staff to re-run.
    """
    return alerts.low_stock_alert_send(variant_id=variant_id, day=day)


@shared_task(name="inventory.low_stock_digest", ignore_result=True, **EMAIL_RETRY)
def low_stock_digest() -> int:
    """E-mail staff the day's list of variants at or below their threshold (beat, daily).

    Retried like every e-mail.
    """
    return alerts.low_stock_digest_send()
