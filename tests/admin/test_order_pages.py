"""The order page and list: what staff read of an order, and who may read which part."""

import datetime

import pytest
from django.contrib import admin
from django.urls import reverse

from inventory.models import StockMovement
from orders.admin import OrderAdmin
from orders.models import Order
from orders.services import order_flag, order_resolve
from payments.models import CreditNote
from payments.services import refund_issue
from tests.admin.client import ORDERS_URL
from tests.admin_shop import (
    order_paid,
    order_placed,
    staff_user,
    variant_stocked,
)

pytestmark = pytest.mark.django_db


def test_the_order_page_served_is_the_one_orders_admin_defines():
    assert type(admin.site.get_model_admin(Order)) is OrderAdmin


def test_order_page_shows_lines_timeline_ledger_and_invoice_and_edits_nothing(client):
    # given
    order = order_paid(variant=variant_stocked(sku="TEE-S"), quantity=2)
    manager = staff_user("manager")
    client.force_login(manager)

    # when
    response = client.get(reverse("admin:orders_order_change", args=[order.pk]))

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="stock-ledger"' in html
    assert "<td>Reservation</td><td>TEE-S</td><td>main</td><td>+0</td><td>+2</td>" in html
    assert "TEE-S" in html
    assert order.invoice.number in html
    assert f"pay-{order.number}" in html
    assert "Grace Hopper<br>1 Navy Yard<br>22202 Arlington<br>US" in html
    for editable in ("status", "total", "subtotal", "shipping", "tracking_number"):
        assert f'name="{editable}"' not in html
    assert response.context["has_change_permission"] is False


@pytest.mark.parametrize(("role", "shown"), [("warehouse", False), ("support", True)])
def test_order_page_shows_invoice_and_credit_notes_only_to_who_may_read_them(client, role, shown):
    # given: a paid order, then refunded (an invoice and a credit note)
    order = order_paid(variant=variant_stocked(on_hand=10))
    refund_issue(order=order, reason="damaged")
    invoice = order.invoice
    credit_note = CreditNote.objects.get(invoice=invoice)
    user = staff_user(role)
    assert user.has_perm("payments.view_invoice") is shown
    assert user.has_perm("payments.view_creditnote") is shown
    client.force_login(user)

    # when
    response = client.get(reverse("admin:orders_order_change", args=[order.pk]))

    # then: the documents' numbers and amounts as their own lists would show or refuse them
    html = response.content.decode()
    assert response.status_code == 200
    assert order.number in html
    assert (invoice.number in html) is shown
    assert (credit_note.number in html) is shown
    assert (f"{invoice.total} {invoice.currency})" in html) is shown
    assert ("Documents</h2>" in html) is shown


@pytest.mark.parametrize(
    ("query", "expected"), [("grace@example.com", 1), ("TRK-SEARCH", 1), ("nobody", 0)]
)
def test_orders_are_found_by_number_email_and_tracking_number(client, query, expected):
    # given
    variant = variant_stocked()
    order = order_paid(variant=variant)
    Order.objects.filter(pk=order.pk).update(tracking_number="TRK-SEARCH")
    client.force_login(staff_user("support"))

    # when
    by_query = client.get(ORDERS_URL, {"q": query})
    by_number = client.get(ORDERS_URL, {"q": order.number})

    # then
    assert by_query.context["cl"].result_count == expected
    assert by_number.context["cl"].result_count == 1


def test_needs_attention_filter_lists_only_flagged_orders(client):
    # given
    variant = variant_stocked()
    flagged = order_placed(variant=variant)
    order_placed(variant=variant)
    Order.objects.filter(pk=flagged.pk).update(needs_attention=True, attention_reason="x")
    client.force_login(staff_user("support"))

    # when
    response = client.get(ORDERS_URL, {"needs_attention__exact": "1"})

    # then
    assert [o.pk for o in response.context["cl"].result_list] == [flagged.pk]


def test_support_downloads_the_invoice_document_and_warehouse_may_not(
    client, django_capture_on_commit_callbacks, settings, tmp_path
):
    # given: the payment's commit requests the document, rendered by the (eager) task
    settings.MEDIA_ROOT = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        order = order_paid(variant=variant_stocked())
    invoice = order.invoice
    invoice.refresh_from_db()
    url = reverse("admin:payments_invoice_document", args=[invoice.pk])

    # when
    client.force_login(staff_user("support"))
    download = client.get(url)
    client.force_login(staff_user("warehouse"))
    refused = client.get(url)

    # then
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    assert invoice.number in b"".join(download.streaming_content).decode()
    assert refused.status_code == 403


def test_customer_list_shows_customers_not_staff(client):
    # given: every user gets a profile, staff included
    order_paid(variant=variant_stocked(), email="buyer@example.com")
    manager = staff_user("manager")
    client.force_login(manager)

    # when
    response = client.get("/admin/orders/customer/")
    staff_profile = client.get(reverse("admin:orders_customer_change", args=[manager.customer.pk]))

    # then
    assert [customer.user.email for customer in response.context["cl"].result_list] == [
        "buyer@example.com"
    ]
    assert staff_profile.status_code == 302


def test_order_page_writes_every_time_with_its_time_zone(client, settings):
    # given: an order placed, and its stock reserved, at 13:03 UTC
    settings.TIME_ZONE = "Europe/Berlin"
    order = order_placed(variant=variant_stocked())
    placed = datetime.datetime(2026, 12, 6, 13, 3, tzinfo=datetime.UTC)
    Order.objects.filter(pk=order.pk).update(placed_at=placed)
    order.events.update(created_at=placed)
    StockMovement.objects.filter(reference=order.number).update(created_at=placed)
    client.force_login(staff_user("support"))

    # when
    page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()

    # then: the dates, the timeline and the ledger, in Berlin's winter time, saying so
    assert page.count("06 Dec 2026 14:03 CET") == 3


def test_timeline_and_flag_read_as_labels_not_codes(client):
    # given: an order placed, paid, then flagged and resolved; another flagged
    order = order_paid(variant=variant_stocked())
    order_flag(order=order, reason="paid twice")
    order_resolve(order=order, note="refunded the second charge")
    other = order_paid(variant=variant_stocked(sku="MUG-RED"), email="other@example.com")
    order_flag(order=other, reason="address unclear")
    client.force_login(staff_user("support"))

    # when
    page = client.get(reverse("admin:orders_order_change", args=[order.pk]))
    listed = client.get(ORDERS_URL)

    # then
    timeline = [(row["what"], row["status"]) for row in inline_rows(page, "timeline")]
    assert timeline == [
        ("Placed", "Pending payment"),
        ("Paid", "Pending payment → Paid"),
        ("Flagged for attention", "Paid"),
        ("Attention resolved", "Paid"),
    ]
    html = page.content.decode()
    assert "pending_payment" not in html
    assert "icon-no.svg" not in html
    assert '<div class="readonly">no</div>' in html
    assert "icon-no.svg" not in listed.content.decode()
    listed_html = listed.content.decode()
    assert '<td class="field-status_and_flag">Paid</td>' in listed_html
    assert (
        '<td class="field-status_and_flag">Paid<br><strong class="sw-flag">needs attention'
        "</strong></td>"
    ) in listed_html


def inline_rows(response, name: str) -> list[dict[str, str]]:
    """The rows of the page's read-only inline `name` (its verbose_name_plural), by label."""
    formset = next(
        formset
        for formset in response.context["inline_admin_formsets"]
        if formset.opts.verbose_name_plural == name
    )
    return [
        {
            field.field["label"]: str(field.contents())
            for fieldset in form
            for line in fieldset
            for field in line
        }
        for form in formset
    ]
