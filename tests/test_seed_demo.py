"""`manage.py seed_demo`: a shop that looks alive (pictures, customers, a month of orders in every
status), made through the real services, and the same shop however often it runs."""

import datetime
import io
from collections import Counter

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from backoffice.dashboard import sales_by_day
from catalog.models import Category, Product, ProductImage, Variant
from inventory.models import StockLevel, StockMovement, StockPolicy, Warehouse
from inventory.selectors import stock_drift, variants_low_on_stock
from orders.models import Customer, DailySales, Fulfilment, Order, OrderEvent
from orders.services import counters_recomputed, counters_reconcile
from payments.models import CreditNote, Invoice, Payment, Refund
from reviews.models import Review
from reviews.services import ratings_reconcile

# Real commits, as in `make run`: thumbnails, e-mails, documents and counters follow on commit.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def development(settings) -> None:
    """The demo is seeded in development (pytest-django runs with DEBUG off)."""
    settings.DEBUG = True


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_builds_a_shop_that_looks_alive(settings):
    # when
    seed()

    # then: the catalog, with pictures and stock
    assert Product.objects.count() == 50
    assert Variant.objects.count() == 89
    assert list(Warehouse.objects.values_list("code", "priority")) == [("main", 10), ("east", 20)]
    assert Category.objects.filter(parent__name="Kitchen", name="Coffee").exists()
    images = list(ProductImage.objects.all())
    assert len(images) == 50
    assert {image.product_id for image in images} == set(
        Product.objects.values_list("pk", flat=True)
    )
    # drawn, stored and thumbnailed through the upload path, inside this test's media folder
    assert all(image.thumbnail for image in images)
    assert all((settings.MEDIA_ROOT / image.image.name).is_file() for image in images)
    assert all((settings.MEDIA_ROOT / image.thumbnail.name).is_file() for image in images)
    # the month's orders leave the scarce SKUs alone: the low-stock panel shows the catalog's
    assert len(variants_low_on_stock()) == 6
    assert stock_drift() == []
    # the import's policy cells: the scarce coffee scale may be ordered beyond its stock
    assert list(StockPolicy.objects.values_list("variant__product__name", "policy", "limit")) == [
        ("Coffee scale", "backorder", 20)
    ]
    # a dozen customers with the published password
    customers = Customer.objects.filter(user__email__endswith="@customers.stockwire.example")
    assert customers.count() == 12
    assert User.objects.get(email="ada@customers.stockwire.example").check_password(
        "demo-customer-pass"
    )
    # every status, a few orders flagged for staff
    assert Counter(Order.objects.values_list("status", flat=True)) == {
        "pending_payment": 2,
        "paid": 5,
        "partially_shipped": 1,
        "shipped": 3,
        "delivered": 37,
        "cancelled": 15,
        "refunded": 3,
    }
    assert Order.objects.filter(needs_attention=True).count() == 3
    assert set(Order.objects.values_list("customer", flat=True)) <= set(
        customers.values_list("pk", flat=True)
    )
    # the real consequences: payments, invoices with documents, refunds with credit notes,
    # an e-mail per step (and per review decision), sales counters that match the orders as dated
    assert Payment.objects.count() == 59
    assert Invoice.objects.count() == Invoice.objects.exclude(document="").count() == 56
    assert Refund.objects.count() == CreditNote.objects.count() == 10
    assert len(mail.outbox) == 246
    expected = counters_recomputed()
    assert {
        customer.pk: (customer.order_count, customer.lifetime_value)
        for customer in Customer.objects.all()
    } == expected["customers"]
    assert {
        row.date: (row.orders, row.units, row.revenue) for row in DailySales.objects.all()
    } == expected["daily"]
    # placed over the last 30 days, every order on the dashboard's chart
    days = sales_by_day()
    assert sum(day.orders for day in days) == 66
    oldest = Order.objects.order_by("placed_at").first().placed_at
    assert timezone.now() - oldest > datetime.timedelta(days=28)
    assert Order.objects.filter(shipped_at__isnull=False).exclude(tracking_number="").count() == 43
    assert Fulfilment.objects.count() == 44
    # the buyers' reviews: most approved, the rest waiting for a moderator; exact ratings
    assert Counter(Review.objects.values_list("status", flat=True)) == {
        "approved": 55,
        "pending": 13,
    }
    assert ratings_reconcile() == 0
    # the counters the dashboard reads agree with the orders they count
    assert counters_reconcile() == 0


def shop_state() -> dict:
    """Everything the demo seeds, as comparable values."""
    return {
        "products": sorted(Product.objects.values_list("slug", "updated_at")),
        "images": sorted(ProductImage.objects.values_list("image", "thumbnail")),
        "users": sorted(User.objects.values_list("username", "password")),
        "orders": sorted(
            Order.objects.values_list("number", "status", "placed_at", "paid_at", "updated_at")
        ),
        "stock": sorted(
            StockLevel.objects.values_list("variant", "warehouse", "on_hand", "reserved")
        ),
        "movements": StockMovement.objects.count(),
        "events": OrderEvent.objects.count(),
        "payments": Payment.objects.count(),
        "invoices": Invoice.objects.count(),
        "refunds": Refund.objects.count(),
        "reviews": sorted(Review.objects.values_list("customer", "product", "status")),
    }


def test_seed_demo_twice_changes_nothing_the_second_time(settings):
    # given
    seed()
    before = shop_state()
    mails = len(mail.outbox)
    media = sorted(path for path in settings.MEDIA_ROOT.rglob("*"))

    # when
    out = seed()

    # then
    assert out == "demo shop already in place; nothing changed\n"
    assert shop_state() == before
    assert len(mail.outbox) == mails
    assert sorted(path for path in settings.MEDIA_ROOT.rglob("*")) == media
