"""The outbox and failed tasks in the admin: who reads them, relays, re-runs and acknowledges."""

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
