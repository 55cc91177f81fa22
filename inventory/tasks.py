"""Inventory's Celery tasks: idempotent, they take ids and call inventory code."""

from celery import shared_task

from core.retries import EMAIL_RETRY
from inventory import alerts


@shared_task(name="inventory.low_stock_alert", ignore_result=True, **EMAIL_RETRY)
def low_stock_alert(*, variant_id: int) -> bool:
    """E-mail staff that a variant runs low (requested on commit by the `stock_low` receiver).

    Retried like every e-mail (SMTP, network and database failures, for about an hour): the
    day's dedupe key stops a later fall from asking again, so a failure not ridden out is
    parked as a TaskFailure for staff to re-run.
    """
    return alerts.low_stock_alert_send(variant_id=variant_id)


@shared_task(name="inventory.low_stock_digest", ignore_result=True, **EMAIL_RETRY)
def low_stock_digest() -> int:
    """E-mail staff the day's list of variants at or below their threshold (beat, daily).

    Retried like every e-mail.
    """
    return alerts.low_stock_digest_send()
