"""The production URLconf plus three bench-only views, so the framework's ceiling and a naive ORM
checkout are measured on the same server, with the same middleware, as the API."""

import json
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from bench.models import Order, OrderLine, Stock, StockMovement
from config.urls import urlpatterns as production_urlpatterns


def bare_json(request: HttpRequest) -> JsonResponse:
    """No database, no cache: what Django and gunicorn cost per request (the ceiling)."""
    return JsonResponse({"ok": True, "items": [{"sku": "BENCH-00001", "price": "9.99"}]})


def orm_get(request: HttpRequest) -> JsonResponse:
    """One primary-key read through the ORM: the cost of getting a database connection."""
    user = get_user_model().objects.only("id", "username").get(pk=request.GET.get("id", 1))
    return JsonResponse({"id": user.pk, "username": user.username})


class OutOfStock(Exception):
    pass


REFERENCE = "reference"
UNIT_PRICE = Decimal("9.99")


@csrf_exempt
@require_POST
def naive_checkout(request: HttpRequest) -> JsonResponse:
    """The raw-SQL reference transaction written naively through the ORM, on its own tables:
    3 conditional UPDATEs in SKU order, then the order, 3 lines and 3 ledger rows (12
    statements). Takes the API's order body; `BENCH-00042` is the reference's sku_id 42. No
    token, idempotency, outbox, signals or cache: what the ORM alone costs for the same work.
    """
    body = json.loads(request.body)
    lines = sorted(
        (int(line["sku"].rsplit("-", 1)[1]), int(line["quantity"])) for line in body["lines"]
    )
    try:
        with transaction.atomic(using=REFERENCE):
            for sku_id, quantity in lines:
                reserved = (
                    Stock.objects.using(REFERENCE)
                    .filter(sku_id=sku_id, on_hand__gte=F("reserved") + quantity)
                    .update(reserved=F("reserved") + quantity)
                )
                if not reserved:
                    raise OutOfStock
            now = timezone.now()
            order = Order.objects.using(REFERENCE).create(
                customer="bench",
                status="placed",
                total=sum(quantity for _, quantity in lines) * UNIT_PRICE,
                created_at=now,
            )
            for sku_id, quantity in lines:
                OrderLine.objects.using(REFERENCE).create(
                    order=order, sku_id=sku_id, qty=quantity, unit_price=UNIT_PRICE
                )
            for sku_id, quantity in lines:
                StockMovement.objects.using(REFERENCE).create(
                    sku_id=sku_id, delta=-quantity, reason="reserve", order=order, created_at=now
                )
    except OutOfStock:
        return JsonResponse({"code": "out_of_stock"}, status=409)
    return JsonResponse({"id": order.pk}, status=201)


urlpatterns = [
    path("bench/bare", bare_json),
    path("bench/orm-get", orm_get),
    path("bench/naive-checkout", naive_checkout),
    *production_urlpatterns,
]
