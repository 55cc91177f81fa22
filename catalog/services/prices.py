"""Price changes in bulk: one UPDATE, one audit INSERT and one signal for many variants."""

from decimal import Decimal, InvalidOperation

from django.db import transaction

from audit.models import AuditAction
from audit.services import audit_record_many
from catalog.models import Variant
from catalog.signals import catalog_changed
from core.sql import update_rows

PRICE_PLACES = Decimal("0.01")


class InvalidPrice(ValueError):
    code = "invalid_price"


@transaction.atomic
def variant_price_bulk_set(*, prices: dict[int, Decimal], actor=None) -> int:
    """Set the prices of many variants (by id) at once; return how many prices changed.

    Prices must be positive and are rounded to cents; unknown ids are ignored. The rows are
    locked in primary-key order, so the audit trail's "before" is the price really replaced
    and concurrent bulk changes cannot deadlock. One UPDATE, one audit INSERT, one signal.

    Sends `catalog_changed(product_ids=...)` for the products whose prices changed.
    """
    wanted = {variant_id: _price(value) for variant_id, value in prices.items()}
    variants = list(Variant.objects.select_for_update().filter(pk__in=wanted).order_by("pk"))
    changed: list[tuple[Variant, dict]] = []
    for variant in variants:
        new_price = wanted[variant.pk]
        if variant.price == new_price:
            continue
        changes = {"price": [str(variant.price), str(new_price)]}
        variant.price = new_price
        changed.append((variant, changes))
    if not changed:
        return 0
    update_rows(Variant, [variant for variant, _ in changed], ["price", "updated_at"])
    audit_record_many(action=AuditAction.UPDATE, changes_by_object=changed, actor=actor)
    catalog_changed.send(
        sender=variant_price_bulk_set,
        product_ids=sorted({variant.product_id for variant, _ in changed}),
    )
    return len(changed)


def _price(value) -> Decimal:
    try:
        price = Decimal(value).quantize(PRICE_PLACES)
    except (InvalidOperation, TypeError, ValueError) as error:
        raise InvalidPrice(f"{value!r} is not a price") from error
    if not price.is_finite() or price <= 0:
        raise InvalidPrice(f"a price must be positive, not {value!r}")
    return price
