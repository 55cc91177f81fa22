"""E-mails to staff about stock running low (sent by the inventory tasks).

Each e-mail goes through `outbox.claims.send_once` with a `SentAlert` row, the way
`orders.email_send` uses its SentEmail: claimed in one short transaction, sent with none open,
marked sent in another. A second delivery of the same task (the relay re-sending work it saw
no end of, a redelivery after a worker was killed) sends nothing; a failed send releases the
claim, so the task's retry sends. At least once: a send whose mark failed goes out again after
the claim's lease, rather than an alert lost.
"""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from catalog.models import Variant
from inventory.models import SentAlert
from inventory.selectors import availability_by_variant, variants_low_on_stock
from outbox.claims import send_once


def low_stock_alert_send(*, variant_id: int, day: str | None = None) -> bool:
    """E-mail staff that a variant fell to or below its threshold, once per day it fell (`day`,
    YYYY-MM-DD; today when None); return whether sent.

    Availability is read again when the task runs: if a receipt came in meanwhile and the variant
    is above its threshold, no e-mail is sent (and a later fall that day asks again).
    """
    variant = Variant.objects.select_related("product").filter(pk=variant_id).first()
    if variant is None or not settings.STAFF_ALERT_EMAILS:
        return False
    available = availability_by_variant(variant_ids=[variant_id])[variant_id]
    if available > variant.low_stock_threshold:
        return False
    return send_once(
        model=SentAlert,
        lookup={"key": f"low_stock:{variant_id}:{day or timezone.localdate().isoformat()}"},
        send=partial(
            send_mail,
            subject=f"Low stock: {variant.sku} ({available} left)",
            message=(
                f"{variant.product.name} {variant.name}".strip()
                + f"\nSKU {variant.sku}: {available} available, threshold "
                f"{variant.low_stock_threshold}.\nReceive stock in the admin to refill it.\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=list(settings.STAFF_ALERT_EMAILS),
        ),
    )


def low_stock_digest_send() -> int:
    """E-mail staff the list of variants at or below their threshold, once a day; return its length.

    Nothing is sent (0) when the list is empty.
    """
    low = variants_low_on_stock()
    if not low or not settings.STAFF_ALERT_EMAILS:
        return 0
    lines = [
        f"{variant.sku}\t{available} available (threshold {variant.low_stock_threshold})\t"
        f"{variant.product.name} {variant.name}".rstrip()
        for variant, available in low
    ]
    sent = send_once(
        model=SentAlert,
        lookup={"key": f"low_stock_digest:{timezone.localdate().isoformat()}"},
        send=partial(
            send_mail,
            subject=f"Low stock digest: {len(low)} SKU(s) at or below threshold",
            message="\n".join(lines) + "\n",
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=list(settings.STAFF_ALERT_EMAILS),
        ),
    )
    return len(low) if sent else 0
