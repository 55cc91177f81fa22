"""Receivers of the inventory app: connected when the app is ready."""

from django.dispatch import receiver
from django.utils import timezone

from inventory.signals import stock_low
from outbox.services import outbox_enqueue


@receiver(stock_low, dispatch_uid="inventory.request_low_stock_alert")
def request_low_stock_alert(*, variant_id: int, **kwargs) -> None:
    """Ask for the staff e-mail about a variant running low, once its stock change commits.

    A receiver, not a call in the services, because alerting is a consequence of the fall
    that the services need not know about. The outbox row commits with the stock change (a
    rolled-back sale alerts nobody). Every fall asks: the task's claim, keyed by the day of
    the fall, keeps it to one e-mail per variant per day, so a request whose task found the
    stock refilled does not silence a later fall that day, and one sent after midnight still
    counts for the day it fell.
    """
    outbox_enqueue(
        task_name="inventory.low_stock_alert",
        kwargs={"variant_id": variant_id, "day": timezone.localdate().isoformat()},
    )
