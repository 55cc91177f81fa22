"""The outbox: requests written with the business transaction, published on commit, relayed."""

import json
import uuid
from datetime import timedelta

import pytest
import redis
from celery.signals import task_failure, task_retry
from django.conf import settings as django_settings
from django.core import mail
from django.core.management import call_command
from django.db import OperationalError, connection, transaction
from django.urls import reverse
from django.utils import timezone
from model_bakery import baker

from config.celery import app as celery_app
from config.tasks import slow_mark
from orders.models import Customer, Order
from outbox import services
from outbox.models import OutboxMessage, TaskFailure
from outbox.services import RELAY_BATCH_SIZE, outbox_enqueue, outbox_prune, outbox_relay
from tests.admin_shop import order_placed, variant_stocked
from tests.embedded_helpers import embedded_env, manage
from tests.faults import celery_broker, closed_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path / "diagnostics"


@pytest.fixture
def dead_broker():
    """Publish to a port nothing listens on: every connection is refused at once."""
    with celery_broker(f"redis://127.0.0.1:{closed_port()}/0", queue="unreachable"):
        yield


@pytest.fixture
def broker_queue():
    """Publish to the real Redis broker on a queue of this test's own (no worker consumes it).

    Yields a function returning the task ids waiting in that queue, oldest first.
    """
    queue = f"test-outbox-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)

    def queued_ids() -> list[str]:
        return [json.loads(raw)["headers"]["id"] for raw in reversed(client.lrange(queue, 0, -1))]

    with celery_broker(django_settings.CELERY_BROKER_URL, queue=queue):
        yield queued_ids
    client.delete(queue)


def _enqueue_mark(key: str, *, dedupe_key: str | None = None) -> None:
    outbox_enqueue(
        task_name="stockwire.slow_mark", kwargs={"key": key, "seconds": 0}, dedupe_key=dedupe_key
    )


def _pending(*, age: timedelta, **fields) -> OutboxMessage:
    fields = {"task_name": "stockwire.slow_mark", "kwargs": {"key": "k", "seconds": 0}} | fields
    message = baker.make(OutboxMessage, **fields)
    OutboxMessage.objects.filter(pk=message.pk).update(created_at=timezone.now() - age)
    return message


def test_request_is_written_in_the_transaction_and_published_on_commit(
    media, django_capture_on_commit_callbacks
):
    # given / when
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        _enqueue_mark("placed")
    message = OutboxMessage.objects.get()

    # then: written, not yet run until the commit callbacks run
    assert message.task_name == "stockwire.slow_mark"
    assert message.published_at is None
    assert not (media / "placed.done").exists()
    for callback in callbacks:
        callback()
    message.refresh_from_db()
    assert message.published_at is not None
    assert message.done_at is not None  # the eager task returned
    assert (media / "placed.done").exists()


def test_rolled_back_request_leaves_no_row_and_runs_nothing(
    media, django_capture_on_commit_callbacks
):
    # given / when
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        _enqueue_mark("rolled-back")
        raise RuntimeError("the business transaction fails")

    # then
    assert callbacks == []
    assert OutboxMessage.objects.count() == 0
    assert not media.exists()


def test_requests_with_the_same_dedupe_key_are_one_request(
    media, django_capture_on_commit_callbacks
):
    # given / when
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            _enqueue_mark("once", dedupe_key="mark:once")
        with transaction.atomic():
            _enqueue_mark("once", dedupe_key="mark:once")

    # then
    assert OutboxMessage.objects.count() == 1
    assert (media / "once.runs").read_text().count("\n") == 1


@pytest.mark.postgres
def test_with_the_relay_publishing_only_a_committed_new_request_wakes_it(
    transactional_db, settings
):
    # given: requests left to the relay (no publish after the commit), and a listener
    settings.OUTBOX_PUBLISH = "relay"
    celery_app.conf.task_always_eager = False
    try:
        with services.RelayWakeups() as wakeups:
            # when / then: a committed request wakes it, and is left unpublished for it
            with transaction.atomic():
                _enqueue_mark("first", dedupe_key="mark:first")
            assert wakeups.wait(timeout=5)
            assert OutboxMessage.objects.get().published_at is None

            # when / then: a duplicate of it, or a request rolled back, wakes nothing
            with transaction.atomic():
                _enqueue_mark("again", dedupe_key="mark:first")
            with pytest.raises(RuntimeError), transaction.atomic():
                _enqueue_mark("rolled-back")
                raise RuntimeError("the business transaction fails")
            assert not wakeups.wait(timeout=0.5)
    finally:
        celery_app.conf.task_always_eager = True
    assert OutboxMessage.objects.count() == 1


def test_the_outbox_is_published_on_commit_unless_a_possible_relay_is_chosen(tmp_path):
    show = "from django.conf import settings; print(settings.OUTBOX_PUBLISH)"

    # when: started embedded, with a relay on PostgreSQL and a broker, with a relay on neither,
    # and with a value that is not a publisher
    default = manage("shell", "--no-imports", "-c", show, env=embedded_env(tmp_path))
    relay = manage(
        "shell",
        "--no-imports",
        "-c",
        show,
        env=embedded_env(
            tmp_path,
            DATABASE_URL="postgres://shop:pw@db:5432/shop",
            REDIS_URL="redis://cache:6379/0",
            OUTBOX_PUBLISH="relay",
        ),
    )
    impossible = manage(
        "shell", "--no-imports", "-c", show, env=embedded_env(tmp_path, OUTBOX_PUBLISH="relay")
    )
    unknown = manage(
        "shell", "--no-imports", "-c", show, env=embedded_env(tmp_path, OUTBOX_PUBLISH="later")
    )

    # then: commit by default, relay where it can work, and a refusal that says why otherwise
    assert (default.stdout.strip(), relay.stdout.strip()) == ("commit", "relay"), relay.stderr
    assert impossible.returncode != 0
    assert "OUTBOX_PUBLISH=relay needs PostgreSQL (DATABASE_URL) and a broker" in impossible.stderr
    assert unknown.returncode != 0
    assert "OUTBOX_PUBLISH must be relay or commit, not 'later'" in unknown.stderr


def test_publish_to_an_unreachable_broker_leaves_the_row_for_the_relay(
    dead_broker, django_capture_on_commit_callbacks
):
    # given / when
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        _enqueue_mark("refused")

    # then: the commit stands, the row waits with its error and a backoff
    message = OutboxMessage.objects.get()
    assert message.published_at is None
    assert message.attempts == 1
    assert "Connection refused" in message.last_error
    assert message.next_attempt_at > timezone.now()


def test_after_a_broker_failure_the_next_publishes_are_left_to_the_relay(
    dead_broker, django_capture_on_commit_callbacks
):
    # given: one publish met the dead broker
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        _enqueue_mark("first")

    # when
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        _enqueue_mark("second")

    # then: the second did not try (no attempt, no error), it waits for the relay
    second = OutboxMessage.objects.get(kwargs__key="second")
    assert second.published_at is None
    assert second.attempts == 0
    assert second.last_error == ""


@pytest.mark.parametrize(
    ("failing", "published"),
    [("_mark_published", True), ("_record_publish_failure", False)],
    ids=["mark-published", "failure-bookkeeping"],
)
def test_an_outbox_step_failing_after_the_commit_leaves_the_order_placed_and_counted(
    transactional_db, monkeypatch, caplog, failing, published
):
    # given: the connection drops right after the order's COMMIT
    variant = variant_stocked(on_hand=5)
    if not published:
        monkeypatch.setattr(services, "_publish", _refused)
    monkeypatch.setattr(services, failing, _connection_dropped)

    # when
    order = order_placed(variant=variant, quantity=1)

    # then: the caller gets its order, the later on-commit effects ran, the row waits
    assert Order.objects.get() == order
    assert Customer.objects.get(pk=order.customer_id).order_count == 1
    row = OutboxMessage.objects.get(task_name="orders.email_send")
    assert row.published_at is None
    assert len(mail.outbox) == (1 if published else 0)
    logged = caplog.records[-1]
    assert (logged.name, logged.levelname) == ("outbox.services", "WARNING")
    assert "the relay will" in logged.getMessage()
    assert "server closed the connection" in logged.error


def _connection_dropped(*args, **kwargs) -> None:
    raise OperationalError("server closed the connection unexpectedly")


def _refused(**kwargs) -> None:
    raise ConnectionRefusedError("broker refused")


@pytest.mark.redis
def test_relay_publishes_due_rows_with_the_row_id_as_task_id(broker_queue):
    # given
    due = _pending(age=timedelta(minutes=1))
    retry_due = _pending(
        age=timedelta(minutes=2), attempts=2, next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    young = _pending(age=timedelta(seconds=1))
    backing_off = _pending(
        age=timedelta(minutes=3), attempts=1, next_attempt_at=timezone.now() + timedelta(minutes=1)
    )
    already_sent = _pending(age=timedelta(minutes=4), published_at=timezone.now())

    # when
    published = outbox_relay()

    # then
    assert published == 2
    assert broker_queue() == [str(retry_due.pk), str(due.pk)]
    assert set(
        OutboxMessage.objects.filter(published_at__isnull=True).values_list("pk", flat=True)
    ) == {
        young.pk,
        backing_off.pk,
    }
    already_sent.refresh_from_db()
    assert already_sent.attempts == 0


@pytest.mark.redis
def test_relay_publishes_again_what_was_published_and_never_ended_past_the_deadline(
    broker_queue, settings
):
    # given: requests published 31 and 29 minutes ago under a 30-minute deadline, and ended ones
    settings.OUTBOX_REDELIVER_AFTER_SECONDS = 1800
    now = timezone.now()
    lost = _pending(age=timedelta(hours=1), published_at=now - timedelta(minutes=31))
    running = _pending(age=timedelta(hours=1), published_at=now - timedelta(minutes=29))
    done = _pending(age=timedelta(hours=1), published_at=now - timedelta(minutes=31), done_at=now)
    failed = _pending(
        age=timedelta(hours=1), published_at=now - timedelta(minutes=31), failed_at=now
    )

    # when
    published = outbox_relay()

    # then: only the lost one is handed out again, under its own id, and counted
    assert published == 1
    assert broker_queue() == [str(lost.pk)]
    lost.refresh_from_db()
    assert (lost.redeliveries, lost.done_at, lost.claimed_until) == (1, None, None)
    assert lost.published_at > now
    for untouched in (running, done, failed):
        untouched.refresh_from_db()
        assert untouched.redeliveries == 0


def test_a_task_that_retries_restarts_its_deadline_and_one_that_returns_ends_its_request():
    # given: a request published an hour ago
    row = _pending(age=timedelta(hours=1), published_at=timezone.now() - timedelta(hours=1))
    request = type("Request", (), {"id": str(row.pk)})()

    # when: its task retries, as a worker signals it
    task_retry.send(sender=slow_mark, request=request, reason=OSError("down"), einfo=None)

    # then
    row.refresh_from_db()
    assert row.published_at > timezone.now() - timedelta(minutes=1)
    assert row.done_at is None

    # when: it runs again and returns
    slow_mark.apply(kwargs={"key": "back", "seconds": 0}, task_id=str(row.pk))

    # then
    row.refresh_from_db()
    assert row.done_at is not None


@pytest.mark.postgres
def test_a_final_failure_on_a_cut_connection_is_recorded_on_a_fresh_one(transactional_db):
    # given: a request whose task's database connection was cut under it
    row = _pending(age=timedelta(minutes=1), published_at=timezone.now())
    with pytest.raises(OperationalError), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    # when: the worker signals the task's final failure on that connection
    task_failure.send(
        sender=slow_mark,
        task_id=str(row.pk),
        exception=OperationalError("terminating connection due to administrator command"),
        args=[],
        kwargs={"key": "cut", "seconds": 0},
        traceback=None,
        einfo=None,
    )

    # then: staff see the failure, and the request is closed as failed, not left to the relay
    failure = TaskFailure.objects.get()
    assert (failure.task_id, failure.kwargs) == (str(row.pk), {"key": "cut", "seconds": 0})
    row.refresh_from_db()
    assert row.failed_at == failure.failed_at


@pytest.mark.redis
def test_relay_now_ignores_grace_and_backoff(broker_queue):
    # given
    young = _pending(age=timedelta(seconds=1))
    backing_off = _pending(
        age=timedelta(minutes=3), attempts=1, next_attempt_at=timezone.now() + timedelta(minutes=1)
    )

    # when
    published = outbox_relay(now_due=True)

    # then
    assert published == 2
    assert sorted(broker_queue()) == sorted([str(young.pk), str(backing_off.pk)])
    assert OutboxMessage.objects.filter(published_at__isnull=True).count() == 0


def test_a_redelivery_the_broker_refused_waits_out_its_backoff(dead_broker, settings):
    # given: a request published long ago and never ended (its message lost)
    settings.OUTBOX_REDELIVER_AFTER_SECONDS = 1800
    lost = _pending(age=timedelta(hours=1), published_at=timezone.now() - timedelta(minutes=31))

    # when: a pass meets the refusing broker, and beat's next pass comes within the backoff
    outbox_relay()
    first = OutboxMessage.objects.get(pk=lost.pk)
    outbox_relay()

    # then: the refusal set a backoff, and the next pass left the row to it
    assert first.attempts == 1 and first.next_attempt_at > timezone.now()
    assert OutboxMessage.objects.get(pk=lost.pk).attempts == 1


def test_relay_stops_at_the_first_sign_of_an_unreachable_broker(dead_broker):
    # given
    first = _pending(age=timedelta(minutes=3))
    _pending(age=timedelta(minutes=2))
    _pending(age=timedelta(minutes=1))

    # when
    published = outbox_relay()

    # then: one row paid the refused connection; the others were not tried
    assert published == 0
    assert list(
        OutboxMessage.objects.order_by("created_at").values_list("attempts", flat=True)
    ) == [1, 0, 0]
    first.refresh_from_db()
    assert first.next_attempt_at > timezone.now()
    assert first.published_at is None


@pytest.mark.redis
def test_relay_records_an_unknown_task_and_goes_on(broker_queue):
    # given
    unknown = _pending(age=timedelta(minutes=2), task_name="nobody.knows")
    known = _pending(age=timedelta(minutes=1))

    # when
    published = outbox_relay()

    # then
    assert published == 1
    assert broker_queue() == [str(known.pk)]
    unknown.refresh_from_db()
    assert unknown.published_at is None
    assert unknown.attempts == 1
    assert "nobody.knows" in unknown.last_error


def test_prune_deletes_old_ended_rows_and_old_failures_only():
    # given
    now = timezone.now()
    week_ago = now - timedelta(days=8)
    old_done = _pending(age=timedelta(days=9), published_at=week_ago, done_at=week_ago)
    old_failed = _pending(age=timedelta(days=9), published_at=week_ago, failed_at=week_ago)
    recent_done = _pending(age=timedelta(days=2), published_at=now - timedelta(days=1), done_at=now)
    old_published_never_done = _pending(age=timedelta(days=9), published_at=week_ago)
    old_unsent = _pending(age=timedelta(days=30), attempts=40)
    old_failure = baker.make(TaskFailure, task_name="orders.email_send", exception="x")
    recent_failure = baker.make(TaskFailure, task_name="orders.email_send", exception="y")
    TaskFailure.objects.filter(pk=old_failure.pk).update(failed_at=now - timedelta(days=31))

    # when
    deleted = outbox_prune()

    # then: work still owed stays, however old
    assert deleted == 3
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {
        recent_done.pk,
        old_published_never_done.pk,
        old_unsent.pk,
    }
    assert list(TaskFailure.objects.values_list("pk", flat=True)) == [recent_failure.pk]
    assert not OutboxMessage.objects.filter(pk__in=[old_done.pk, old_failed.pk]).exists()


def test_a_final_task_failure_is_recorded_for_staff():
    # given
    error = ValueError("key must be 1-64 characters")

    # when: Celery's signal, as a worker sends it when no retry is left
    task_failure.send(
        sender=slow_mark,
        task_id="5b1f0c1e-task",
        exception=error,
        args=[],
        kwargs={"key": "BAD KEY", "seconds": 0, "odd": object()},
        traceback=None,
        einfo=None,
    )

    # then
    failure = TaskFailure.objects.get()
    assert failure.task_name == "stockwire.slow_mark"
    assert failure.task_id == "5b1f0c1e-task"
    assert failure.kwargs["key"] == "BAD KEY"
    assert failure.kwargs["odd"].startswith("<object object")
    assert failure.exception == "ValueError('key must be 1-64 characters')"


def test_admin_lists_outbox_rows_by_state_and_task_read_only(admin_client, settings):
    # given: one row in each state
    settings.OUTBOX_REDELIVER_AFTER_SECONDS = 1800
    now = timezone.now()
    pending = _pending(age=timedelta(minutes=1))
    refused = _pending(age=timedelta(minutes=2), attempts=3, last_error="OperationalError(...)")
    published = _pending(age=timedelta(minutes=3), published_at=now)
    overdue = _pending(age=timedelta(hours=1), published_at=now - timedelta(minutes=31))
    done = _pending(age=timedelta(minutes=4), published_at=now, done_at=now)
    failed = _pending(age=timedelta(minutes=5), published_at=now, failed_at=now)
    url = reverse("admin:outbox_outboxmessage_changelist")

    # when
    everything = admin_client.get(url)
    by_state = {
        state: [m.pk for m in admin_client.get(url, {"state": state}).context["cl"].result_list]
        for state in ("pending", "refused", "published", "overdue", "done", "failed")
    }
    by_task = admin_client.get(url, {"task_name": "stockwire.slow_mark", "state": "done"})
    change_page = admin_client.get(reverse("admin:outbox_outboxmessage_change", args=[refused.pk]))

    # then
    assert everything.context["cl"].result_count == 6
    assert by_state == {
        "pending": [pending.pk],
        "refused": [refused.pk],
        "published": [published.pk],
        "overdue": [overdue.pk],
        "done": [done.pk],
        "failed": [failed.pk],
    }
    assert by_task.context["cl"].result_count == 1
    assert change_page.status_code == 200
    assert change_page.context["has_change_permission"] is False
    assert admin_client.get(reverse("admin:outbox_outboxmessage_add")).status_code == 403


@pytest.mark.redis
def test_admin_relay_now_publishes_the_selected_rows_at_once(admin_client, broker_queue):
    # given: one row still in its backoff, one untouched
    backing_off = _pending(
        age=timedelta(minutes=3), attempts=1, next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    untouched = _pending(age=timedelta(minutes=1))

    # when
    response = admin_client.post(
        reverse("admin:outbox_outboxmessage_changelist"),
        {"action": "relay_now", "_selected_action": [str(backing_off.pk)]},
        follow=True,
    )

    # then
    assert response.status_code == 200
    assert broker_queue() == [str(backing_off.pk)]
    untouched.refresh_from_db()
    assert untouched.published_at is None
    assert "Handed 1 of 1" in response.content.decode()


def test_admin_lists_task_failures(admin_client):
    # given
    baker.make(TaskFailure, task_name="orders.email_send", exception="SMTPException('down')")
    baker.make(TaskFailure, task_name="catalog.thumbnail_make", exception="OSError('disk')")

    # when
    response = admin_client.get(
        reverse("admin:outbox_taskfailure_changelist"), {"task_name": "orders.email_send"}
    )

    # then
    assert response.context["cl"].result_count == 1
    assert "SMTPException" in response.content.decode()


@pytest.mark.redis
def test_outbox_relay_command_drains_every_due_row(broker_queue, capsys):
    # given
    for minutes in range(1, 4):
        _pending(age=timedelta(minutes=minutes))
    _pending(age=timedelta(seconds=1))

    # when
    call_command("outbox_relay")

    # then: the young row is left to the process that wrote it
    assert len(broker_queue()) == 3
    assert capsys.readouterr().out.strip() == "relayed 3"
    assert OutboxMessage.objects.filter(published_at__isnull=True).count() == 1


@pytest.mark.redis
@pytest.mark.parametrize("now", [True, False], ids=["now", "due"])
def test_outbox_relay_command_reaches_good_rows_behind_a_full_batch_it_cannot_publish(
    broker_queue, capsys, now
):
    # given: the oldest rows, a whole batch of them, name a task no longer deployed
    unknown = [
        _pending(age=timedelta(hours=1), task_name="removed.in.last.deploy")
        for _ in range(RELAY_BATCH_SIZE)
    ]
    good = _pending(age=timedelta(minutes=5))

    # when
    call_command("outbox_relay", *(["--now"] if now else []))

    # then: the good row went out, each unknown one was tried once and kept with its error
    assert broker_queue() == [str(good.pk)]
    assert capsys.readouterr().out.strip() == "relayed 1"
    tried = OutboxMessage.objects.filter(
        pk__in=[row.pk for row in unknown], published_at__isnull=True
    )
    assert sorted(set(tried.values_list("attempts", flat=True))) == [1]
    assert tried.count() == RELAY_BATCH_SIZE


def test_readiness_reports_what_the_outbox_still_owes(client, settings):
    # given: two requests the broker has not taken, one published and running, one published
    # and lost past the redelivery deadline, one done
    settings.OUTBOX_REDELIVER_AFTER_SECONDS = 1800
    now = timezone.now()
    _pending(age=timedelta(seconds=90))
    _pending(age=timedelta(seconds=30))
    _pending(age=timedelta(minutes=2), published_at=now - timedelta(minutes=1))
    _pending(age=timedelta(hours=1), published_at=now - timedelta(minutes=40))
    _pending(age=timedelta(hours=1), published_at=now, done_at=now)

    # when
    body = client.get("/readyz").json()

    # then
    assert body["outbox"]["pending"] == 2
    assert 90 <= body["outbox"]["oldest_pending_age_seconds"] < 120
    assert (body["outbox"]["in_progress"], body["outbox"]["overdue"]) == (2, 1)
