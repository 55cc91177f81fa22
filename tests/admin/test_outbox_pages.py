"""The outbox and failed tasks in the admin: who reads them, relays, re-runs and acknowledges."""

from functools import partial

import pytest
from django.core import mail
from django.urls import reverse

from outbox.models import OutboxMessage, TaskFailure
from tests.admin.client import action_choices, messages_of, run_action
from tests.admin_shop import (
    order_placed,
    staff_user,
    variant_stocked,
)
from tests.webhooks_helpers import ConnectionGuard, endpoint_for
from webhooks.services import event_emit

pytestmark = pytest.mark.django_db


OUTBOX_URL = "/admin/outbox/outboxmessage/"
TASK_FAILURES_URL = "/admin/outbox/taskfailure/"


@pytest.mark.parametrize(
    ("role", "reads", "acknowledges"),
    [("warehouse", False, False), ("support", True, False), ("manager", True, True)],
)
def test_support_and_manager_see_the_outbox_and_failed_tasks_and_the_manager_deals_with_them(
    client, role, reads, acknowledges
):
    # given: a task that failed for good, and a request the broker did not take
    failure = TaskFailure.objects.create(task_name="orders.email_send", exception="SMTP down")
    OutboxMessage.objects.create(task_name="orders.email_send", kwargs={}, attempts=1)
    user = staff_user(role)
    client.force_login(user)

    # when
    failures = client.get(TASK_FAILURES_URL)
    outbox = client.get(OUTBOX_URL)
    acknowledged = client.post(
        reverse("admin:outbox_taskfailure_delete", args=[failure.pk]), {"post": "yes"}
    )

    # then
    assert (failures.status_code, outbox.status_code) == ((200, 200) if reads else (403, 403))
    if reads:
        assert "SMTP down" in failures.content.decode()
        assert outbox.context["cl"].result_count == 1
    assert acknowledged.status_code == (302 if acknowledges else 403)
    assert TaskFailure.objects.filter(pk=failure.pk).exists() is not acknowledges
    assert user.has_perm("outbox.change_outboxmessage") is acknowledges


def test_manager_relays_open_requests_from_the_outbox_list(client):
    # given
    message = OutboxMessage.objects.create(task_name="orders.email_send", kwargs={}, attempts=1)
    client.force_login(staff_user("manager"))

    # when
    choices = action_choices(client, OUTBOX_URL)
    response = run_action(client, OUTBOX_URL, "relay_now", [message])

    # then: the action ran (whether the broker took the row is the outbox's own tests' matter)
    assert "relay_now" in choices
    assert response.status_code == 302
    assert messages_of(response)[0].endswith("of 1 open requests to the broker.")


def test_support_reads_the_outbox_but_cannot_relay_it(client):
    # given
    message = OutboxMessage.objects.create(task_name="orders.email_send", kwargs={}, attempts=1)
    client.force_login(staff_user("support"))

    # when
    choices = action_choices(client, OUTBOX_URL)
    response = run_action(client, OUTBOX_URL, "relay_now", [message])

    # then: the action is neither offered nor run
    assert "relay_now" not in choices
    message.refresh_from_db()
    assert (message.attempts, message.published_at) == (1, None)
    assert response.status_code in (200, 302)


@pytest.mark.parametrize("role", ["support", "manager"])
def test_support_and_manager_rerun_a_failed_email_once_its_cause_is_fixed(
    client, role, django_capture_on_commit_callbacks
):
    # given: an order whose confirmation failed for good while the mail server was down
    order = order_placed(variant=variant_stocked(), quantity=1)
    failure = TaskFailure.objects.create(
        task_name="orders.email_send",
        kwargs={"order_id": order.pk, "kind": "confirmation"},
        exception="SMTPServerDisconnected('Connection unexpectedly closed')",
    )
    user = staff_user(role)
    client.force_login(user)

    # when: re-run twice (a double click, a second member of staff)
    with django_capture_on_commit_callbacks(execute=True):
        first = run_action(client, TASK_FAILURES_URL, "rerun", [failure])
        second = run_action(client, TASK_FAILURES_URL, "rerun", [failure])

    # then: one new request, run, and the e-mail sent once; the failure says who re-ran it
    assert "rerun" in action_choices(client, TASK_FAILURES_URL)
    assert messages_of(first)[0] == "Requested 1 of 1 failed tasks again."
    assert messages_of(second)[-1].startswith("Requested 0 of 1 failed tasks again. 1 had been")
    assert [message.subject for message in mail.outbox] == [
        f"Your order {order.number} is confirmed"
    ]
    failure.refresh_from_db()
    assert (failure.rerun_by, failure.rerun_at is not None) == (user, True)
    request = OutboxMessage.objects.get(pk=failure.rerun_request)
    assert (request.task_name, request.kwargs) == (failure.task_name, failure.kwargs)
    assert request.done_at is not None


def test_warehouse_cannot_rerun_a_failed_task(client, django_capture_on_commit_callbacks):
    # given
    failure = TaskFailure.objects.create(
        task_name="stockwire.slow_mark", kwargs={"key": "k", "seconds": 0}, exception="x"
    )
    client.force_login(staff_user("warehouse"))

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(client, TASK_FAILURES_URL, "rerun", [failure])

    # then
    assert response.status_code == 403
    failure.refresh_from_db()
    assert failure.rerun_at is None
    assert OutboxMessage.objects.count() == 0


@pytest.mark.parametrize("count", [1, 15])
def test_the_outbox_lists_say_what_each_task_is_about_with_one_query_per_kind(
    client, django_assert_max_num_queries, count
):
    # given: e-mails of `count` orders, a low-stock alert, and a task whose order is gone
    variant = variant_stocked(sku="ABOUT-ME", on_hand=50)
    orders = [order_placed(variant=variant, quantity=1) for _ in range(count)]
    OutboxMessage.objects.all().delete()
    for order in orders:
        OutboxMessage.objects.create(
            task_name="orders.email_send",
            kwargs={"order_id": order.pk, "kind": "shipped", "context": {"note": "x"}},
        )
    OutboxMessage.objects.create(
        task_name="inventory.low_stock_alert", kwargs={"variant_id": variant.pk}
    )
    OutboxMessage.objects.create(task_name="orders.email_send", kwargs={"order_id": 999_999})
    TaskFailure.objects.create(
        task_name="orders.email_send",
        kwargs={"order_id": orders[0].pk, "kind": "receipt"},
        exception="SMTP down",
    )
    client.force_login(staff_user("support"))

    # when / then: session, user, permissions, counts, page, filters, date hierarchy, and one
    # query per kind of row named
    with django_assert_max_num_queries(12):
        outbox = client.get(OUTBOX_URL)
    failures = client.get(TASK_FAILURES_URL)
    alert = OutboxMessage.objects.get(task_name="inventory.low_stock_alert")
    alert_page = client.get(reverse("admin:outbox_outboxmessage_change", args=[alert.pk]))

    # then
    about = {
        message.kwargs.get("order_id") or message.task_name: str(message.about)
        for message in outbox.context["cl"].result_list
    }
    order_url = reverse("admin:orders_order_change", args=[orders[-1].pk])
    assert about[orders[-1].pk] == (
        f'<a href="{order_url}">order {orders[-1].number}</a> · kind: shipped'
    )
    variant_url = reverse("admin:catalog_variant_change", args=[variant.pk])
    assert about["inventory.low_stock_alert"] == (
        f'<a href="{variant_url}">variant ABOUT-ME (ABOUT-ME)</a>'
    )
    assert about[999_999] == "order 999999 (gone)"
    assert f'<a href="{variant_url}">variant ABOUT-ME (ABOUT-ME)</a>' in alert_page.content.decode()
    failure_url = reverse("admin:orders_order_change", args=[orders[0].pk])
    assert f'<a href="{failure_url}">order {orders[0].number}</a> · kind: receipt' in (
        failures.content.decode()
    )


def test_support_reads_a_webhook_deliverys_request_without_its_endpoints_url(
    client, settings, monkeypatch
):
    # given: a delivery requested to an endpoint whose URL carries its receiver's secret
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    ConnectionGuard(monkeypatch)
    endpoint_for("http://127.0.0.1:9/hooks/T0KEN-the-manager-keeps", "stock.low")
    event_emit(
        event_type="stock.low",
        resource_type="variant",
        resource_id=1,
        data=partial(dict, variant={"id": 1}),
    )
    request = OutboxMessage.objects.get(task_name="webhooks.delivery_attempt")
    page = f"{OUTBOX_URL}{request.pk}/change/"

    # when: support (who may not read webhooks) and the manager read the outbox
    client.force_login(staff_user("support"))
    support_sees = client.get(OUTBOX_URL).content.decode() + client.get(page).content.decode()
    client.force_login(staff_user("manager"))
    manager_sees = client.get(OUTBOX_URL).content.decode()

    # then: support reads which delivery it is, not where it goes
    assert "T0KEN-the-manager-keeps" not in support_sees
    assert "webhook delivery" in support_sees
    assert "T0KEN-the-manager-keeps" in manager_sees
