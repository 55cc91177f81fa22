"""Outbound webhooks delivered to a real HTTP receiver on 127.0.0.1: signed, retried on
failure, bounded in time, resent on request, and an endpoint that never answers disabled.

Tasks run eagerly: an event's first attempt is made when its transaction's on-commit
callbacks run; later attempts when the dispatcher finds them due (a test makes them due by
moving `next_attempt_at` back, as the passing of time would).
"""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from orders.services import order_ship
from outbox.models import OutboxMessage
from payments.services import webhook_handle
from tests.faults import closed_port
from tests.orders_helpers import customer_new, order_new, variant_stocked
from tests.payments_helpers import payment_event, signed
from tests.webhooks_helpers import ConnectionGuard, Receiver, endpoint_for, readme_verify
from webhooks.models import (
    DeliveryAttempt,
    DeliveryState,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from webhooks.network import EXCERPT_BYTES, USER_AGENT
from webhooks.services import (
    MAX_ATTEMPTS,
    ResendRefused,
    deliveries_dispatch,
    delivery_resend,
    endpoint_resend_since,
    endpoint_secret_rotate,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def guard(monkeypatch, settings) -> ConnectionGuard:
    """Receivers listen on loopback, which these tests allow; nothing leaves 127.0.0.1."""
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return ConnectionGuard(monkeypatch)


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def _place_order(capture, sku: str = "HOOK-1"):
    """Place an order and run its on-commit callbacks (the first delivery attempt)."""
    variant_stocked(sku, on_hand=10)
    with capture(execute=True):
        return order_new(customer_new(), (sku, 1))


def _run_due_attempts(capture) -> int:
    """Make every pending delivery due, as the passing of time would, and dispatch."""
    WebhookDelivery.objects.filter(state=DeliveryState.PENDING).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    with capture(execute=True):
        return deliveries_dispatch()


def test_event_is_posted_signed_and_verifies_with_the_readme_recipe(
    receiver, django_capture_on_commit_callbacks
):
    # given
    endpoint, secret = endpoint_for(receiver.url(), "order.placed")

    # when
    order = _place_order(django_capture_on_commit_callbacks)

    # then: one POST, whose signature docs/webhooks.md's code accepts (and refuses with another key)
    verify = readme_verify()
    [request] = receiver.requests
    assert verify(request.body, request.headers["Stockwire-Signature"], secret)
    assert not verify(request.body, request.headers["Stockwire-Signature"], "whsec_other")
    assert not verify(request.body + b" ", request.headers["Stockwire-Signature"], secret)
    payload = request.payload
    assert set(payload) == {"id", "type", "version", "created_at", "sequence", "data"}
    assert (payload["type"], payload["version"], payload["sequence"]) == ("order.placed", "1", 1)
    assert payload["data"]["order"]["number"] == order.number
    assert payload["data"]["order"]["total"] == str(order.total)
    assert payload["data"]["order"]["lines"] == [
        {
            "sku": "HOOK-1",
            "name": "Item HOOK-1",
            "quantity": 1,
            "unit_price": "10.00",
            "line_total": "10.00",
        }
    ]
    assert request.headers["Stockwire-Event-Id"] == payload["id"]
    assert request.headers["Stockwire-Event-Type"] == "order.placed"
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers["Content-Type"] == "application/json"
    delivery = WebhookDelivery.objects.get()
    assert (delivery.endpoint, delivery.state, delivery.attempts) == (
        endpoint,
        DeliveryState.SUCCEEDED,
        1,
    )
    assert list(delivery.attempt_log.values_list("number", "status_code", "error")) == [
        (1, 200, "")
    ]


def test_receiver_failing_twice_gets_the_event_three_times_and_one_is_acknowledged(
    receiver, django_capture_on_commit_callbacks
):
    # given: a receiver that answers 500, 500, then 200
    receiver.answers = [500, 500, 200]
    endpoint_for(receiver.url(), "order.placed")

    # when: the first attempt fails
    started = timezone.now()
    _place_order(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()

    # then: it waits about a minute (±20 % jitter) for its second attempt
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    wait = delivery.next_attempt_at - started
    assert timedelta(seconds=48) <= wait <= timedelta(seconds=73)

    # when: the second and third attempts come due
    _run_due_attempts(django_capture_on_commit_callbacks)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("pending", 2)
    _run_due_attempts(django_capture_on_commit_callbacks)

    # then: three identical POSTs, the last acknowledged; nothing left to send
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("succeeded", 3, None)
    assert [r.body for r in receiver.requests] == [receiver.requests[0].body] * 3
    assert len({r.payload["id"] for r in receiver.requests}) == 1
    assert list(delivery.attempt_log.values_list("number", "status_code")) == [
        (1, 500),
        (2, 500),
        (3, 200),
    ]
    assert _run_due_attempts(django_capture_on_commit_callbacks) == 0
    assert len(receiver.requests) == 3


def test_a_hanging_receiver_costs_the_worker_its_timeout_and_the_attempt_is_retried(
    receiver, django_capture_on_commit_callbacks, settings
):
    # given: a receiver that holds every request until the test releases it
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    receiver.hang = True
    endpoint_for(receiver.url(), "order.placed")

    # when
    _place_order(django_capture_on_commit_callbacks)

    # then: the attempt ended (as a timeout) while the receiver still holds the request
    assert not receiver.release.is_set()
    delivery = WebhookDelivery.objects.get()
    [attempt] = delivery.attempt_log.all()
    assert attempt.status_code is None
    assert attempt.error == "timeout: no answer within 1 s"
    assert (delivery.state, delivery.attempts) == ("pending", 1)
    assert delivery.next_attempt_at > timezone.now()


@pytest.mark.parametrize(
    ("answer", "expected_error"),
    [
        ("refused", "ConnectionRefusedError: [Errno 111] Connection refused"),
        ("redirect", ""),
    ],
)
def test_a_refused_connection_or_a_redirect_is_a_failure_to_retry(
    receiver, django_capture_on_commit_callbacks, answer, expected_error
):
    # given: nothing listening, or a receiver that redirects to another that would accept
    elsewhere = Receiver().start()
    receiver.answers = [302]
    receiver.location = elsewhere.url()
    url = f"http://127.0.0.1:{closed_port()}/hooks" if answer == "refused" else receiver.url()
    endpoint_for(url, "order.placed")

    # when
    _place_order(django_capture_on_commit_callbacks)
    elsewhere.stop()

    # then: recorded and scheduled again; the redirect was not followed
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("pending", 1)
    [attempt] = delivery.attempt_log.all()
    assert attempt.error == expected_error
    assert attempt.status_code == (302 if answer == "redirect" else None)
    assert elsewhere.requests == []


def test_the_answer_kept_is_at_most_one_kilobyte(receiver, django_capture_on_commit_callbacks):
    # given
    receiver.answers = [500]
    receiver.reply_body = b"x" * 5000
    endpoint_for(receiver.url(), "order.placed")

    # when
    _place_order(django_capture_on_commit_callbacks)

    # then
    attempt = DeliveryAttempt.objects.get()
    assert (attempt.status_code, len(attempt.response_excerpt)) == (500, EXCERPT_BYTES)


def test_during_a_rotation_both_secrets_sign_until_the_grace_period_ends(
    receiver, django_capture_on_commit_callbacks
):
    # given: a rotated secret
    endpoint, old_secret = endpoint_for(receiver.url(), "order.placed")
    new_secret = endpoint_secret_rotate(endpoint=endpoint)
    verify = readme_verify()

    # when
    _place_order(django_capture_on_commit_callbacks, sku="ROT-1")

    # then: two v1 entries; a receiver on either secret accepts the event
    header = receiver.requests[0].headers["Stockwire-Signature"]
    assert header.count("v1=") == 2
    assert verify(receiver.requests[0].body, header, old_secret)
    assert verify(receiver.requests[0].body, header, new_secret)

    # when: the grace period is over
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    _place_order(django_capture_on_commit_callbacks, sku="ROT-2")

    # then: only the new secret signs
    header = receiver.requests[1].headers["Stockwire-Signature"]
    assert header.count("v1=") == 1
    assert verify(receiver.requests[1].body, header, new_secret)
    assert not verify(receiver.requests[1].body, header, old_secret)


def _notices() -> list[tuple[str, list[str]]]:
    return [(m.subject, m.to) for m in mail.outbox if m.subject.startswith("Webhook")]


def test_an_endpoint_failing_for_the_whole_window_is_disabled_and_managers_told_once(
    receiver, django_capture_on_commit_callbacks, django_user_model, settings
):
    # given: a receiver that always fails, and a manager with an address
    from django.contrib.auth.models import Group

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    manager = django_user_model.objects.create_user(
        username="boss@stockwire.example", email="boss@stockwire.example", is_staff=True
    )
    manager.groups.add(Group.objects.get(name="manager"))
    receiver.answers = [503]
    endpoint, _ = endpoint_for(receiver.url(), "order.placed", description="ERP")

    # when: every attempt of the schedule fails
    _place_order(django_capture_on_commit_callbacks)
    for _ in range(MAX_ATTEMPTS - 1):
        _run_due_attempts(django_capture_on_commit_callbacks)

    # then: the delivery failed for good, the endpoint is disabled, one e-mail went out
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("failed", MAX_ATTEMPTS)
    assert len(receiver.requests) == MAX_ATTEMPTS == 13
    endpoint.refresh_from_db()
    assert endpoint.active is False
    assert endpoint.disabled_reason.startswith("every attempt failed from ")
    assert _notices() == [("Webhook endpoint disabled: ERP", ["boss@stockwire.example"])]
    assert endpoint.disabled_notices.get().sent_at is not None

    # when: the notice task runs again (a redelivered message), and a new order is placed
    from webhooks.tasks import endpoint_disabled_notify

    endpoint_disabled_notify(endpoint_id=endpoint.pk)
    _place_order(django_capture_on_commit_callbacks, sku="HOOK-2")

    # then: no second e-mail; the disabled endpoint gets no delivery
    assert len(_notices()) == 1
    assert WebhookDelivery.objects.count() == 1
    assert len(receiver.requests) == 13


def test_a_success_on_another_delivery_keeps_the_endpoint_active(
    receiver, django_capture_on_commit_callbacks
):
    # given: one delivery that will exhaust its schedule
    receiver.answers = [500]
    endpoint, _ = endpoint_for(receiver.url(), "order.placed")
    _place_order(django_capture_on_commit_callbacks)
    for _ in range(MAX_ATTEMPTS - 2):
        _run_due_attempts(django_capture_on_commit_callbacks)

    # when: another event is acknowledged before the first fails its last attempt
    receiver.answers = [200]
    _place_order(django_capture_on_commit_callbacks, sku="HOOK-2")
    receiver.answers = [500]
    _run_due_attempts(django_capture_on_commit_callbacks)

    # then: that delivery failed, but the endpoint answered in its window: still active
    states = sorted(WebhookDelivery.objects.values_list("state", flat=True))
    assert states == ["failed", "succeeded"]
    endpoint.refresh_from_db()
    assert (endpoint.active, endpoint.failing_since is not None) == (True, True)


def test_resending_a_delivery_sends_the_same_event_again_as_a_new_delivery(
    receiver, django_capture_on_commit_callbacks
):
    # given: a delivered event
    endpoint_for(receiver.url(), "order.placed")
    _place_order(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        resent = delivery_resend(delivery=delivery)

    # then: the receiver has the same event (same id and body) twice
    assert [r.body for r in receiver.requests] == [receiver.requests[0].body] * 2
    resent.refresh_from_db()
    assert (resent.resend_of, resent.event_id, resent.state) == (
        delivery,
        delivery.event_id,
        "succeeded",
    )


def test_a_pending_delivery_or_an_inactive_endpoint_is_not_resent(
    receiver, django_capture_on_commit_callbacks
):
    # given: a delivery still retrying
    receiver.answers = [500]
    endpoint, _ = endpoint_for(receiver.url(), "order.placed")
    _place_order(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()

    # when / then
    with pytest.raises(ResendRefused) as pending:
        delivery_resend(delivery=delivery)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)
    delivery.refresh_from_db()
    with pytest.raises(ResendRefused) as inactive:
        endpoint_resend_since(endpoint=delivery.endpoint, since=timezone.now())
    assert (pending.value.code, inactive.value.code) == ("delivery_pending", "endpoint_inactive")
    assert WebhookDelivery.objects.count() == 1
    assert len(receiver.requests) == 1


def test_resend_since_sends_every_recorded_event_from_that_time(
    receiver, django_capture_on_commit_callbacks
):
    # given: an endpoint of yesterday; an event of an hour ago and one of now, both delivered
    endpoint, _ = endpoint_for(receiver.url(), "order.placed")
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        created_at=timezone.now() - timedelta(days=1)
    )
    endpoint.refresh_from_db()
    older = _place_order(django_capture_on_commit_callbacks, sku="OLD-1")
    newer = _place_order(django_capture_on_commit_callbacks, sku="NEW-1")
    WebhookEvent.objects.filter(resource_id=older.pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )

    # when: resend since half an hour ago
    with django_capture_on_commit_callbacks(execute=True):
        count = endpoint_resend_since(
            endpoint=endpoint, since=timezone.now() - timedelta(minutes=30)
        )

    # then: only the newer event went out again
    numbers = [r.payload["data"]["order"]["number"] for r in receiver.requests]
    assert (count, numbers) == (1, [older.number, newer.number, newer.number])


def test_a_requested_attempt_runs_once_however_often_its_task_is_delivered(
    receiver, django_capture_on_commit_callbacks
):
    # given: a delivered event
    endpoint_for(receiver.url(), "order.placed")
    _place_order(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()

    # when: its first attempt's task runs again (the relay re-published it)
    from webhooks.tasks import delivery_attempt

    again = delivery_attempt(delivery_id=delivery.pk, attempt=1)

    # then
    assert again is None
    assert len(receiver.requests) == 1
    assert OutboxMessage.objects.filter(task_name="webhooks.delivery_attempt").count() == 1


def test_the_receiver_can_order_an_order_s_events_by_their_sequence(
    receiver, django_capture_on_commit_callbacks
):
    # given: an endpoint on the order's lifecycle; the first attempt of order.paid fails
    endpoint_for(receiver.url(), "order.placed", "order.paid", "order.shipped")
    order = _place_order(django_capture_on_commit_callbacks)
    receiver.answers = [200, 503, 200]

    # when: it is paid (refused once) and shipped, then the retry is delivered
    with django_capture_on_commit_callbacks(execute=True):
        webhook_handle(**signed(payment_event(order)))
    order.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        order_ship(order=order, tracking_number="1Z-SEQ")
    _run_due_attempts(django_capture_on_commit_callbacks)

    # then: received out of order, put back in order by the sequence
    received = [
        (r.payload["sequence"], r.payload["type"]) for r in receiver.requests if r.status == 200
    ]
    assert received == [(1, "order.placed"), (3, "order.shipped"), (2, "order.paid")]
    assert sorted(received) == [(1, "order.placed"), (2, "order.paid"), (3, "order.shipped")]
