"""The beat schedule and Celery's delivery settings agree with the tasks that exist."""

from celery.schedules import crontab
from django.conf import settings

from config.celery import app
from core.retries import RIDE_OUT_RETRIES, BackoffTask, retry_wait


def _registered_tasks() -> dict:
    app.loader.import_default_modules()  # what a worker does at start-up
    return app.tasks


def test_every_scheduled_task_is_a_registered_task():
    # given
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    # when
    registered = set(_registered_tasks())

    # then
    assert sorted(scheduled - registered) == []


def test_the_schedule_runs_each_periodic_job_at_its_rhythm():
    # given
    schedule = {
        entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
    }

    # then: seconds for the frequent ones, wall-clock times for the daily and hourly ones
    assert schedule["outbox.relay"] == 5.0
    assert schedule["orders.expire_unpaid"] == 60.0
    assert schedule["storefront.idempotency_keys_purge"] == crontab(minute=25)
    assert schedule["outbox.prune"] == crontab(hour=3, minute=10)
    assert schedule["orders.counters_reconcile"] == crontab(hour=2, minute=40)
    assert schedule["inventory.low_stock_digest"] == crontab(hour=6, minute=0)
    assert schedule["webhooks.deliveries_dispatch"] == 15.0
    assert schedule["webhooks.changes_emit"] == 30.0
    assert schedule["webhooks.prune"] == crontab(hour=3, minute=40)
    assert schedule["reviews.ratings_reconcile"] == crontab(hour=2, minute=50)
    assert schedule["reviews.pending_digest"] == crontab(hour=6, minute=5)
    assert schedule["orders.backorders_sweep"] == 60.0
    assert len(schedule) == 12


def test_a_frequent_job_that_waited_past_its_next_turn_is_dropped():
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        if isinstance(entry["schedule"], float):
            assert entry["options"]["expires"] <= entry["schedule"], name


def _longest_countdown(task) -> float:
    """A retry policy's longest wait, or Celery's default delay for a task without one."""
    if isinstance(task, BackoffTask):
        return task.retry_wait_longest
    if getattr(task, "retry_backoff", False):
        return getattr(task, "retry_backoff_max", 600)
    return task.default_retry_delay or 0


def test_no_task_can_still_run_or_wait_to_retry_when_the_broker_hands_it_out_again():
    # given: a message unacknowledged for this long goes back to the queue
    visibility_timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]

    # when: the longest a worker holds one message is a retry countdown plus a full run
    longest_hold = {
        name: _longest_countdown(task) + (task.time_limit or settings.CELERY_TASK_TIME_LIMIT)
        for name, task in _registered_tasks().items()
        if not name.startswith("celery.")
    }

    # then
    assert {name: hold for name, hold in longest_hold.items() if hold >= visibility_timeout} == {}


def test_tasks_are_acknowledged_after_they_run_and_requeued_when_their_worker_dies():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["socket_timeout"] <= 2
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["socket_connect_timeout"] <= 2


def test_a_task_retried_by_the_policies_rides_out_an_hour_before_it_fails_for_good():
    # given: the shortest waits (no jitter) of every retry the policies allow
    shortest_waits = [retry_wait(number) for number in range(RIDE_OUT_RETRIES)]

    # then: an hour is covered, and one retry fewer would not cover it
    assert sum(shortest_waits) == 1023 + 5 * 600
    assert sum(shortest_waits) >= 3600 > sum(shortest_waits[:-1])
    retried = [task for task in _registered_tasks().values() if isinstance(task, BackoffTask)]
    assert sorted(task.name for task in retried) == [
        "catalog.thumbnail_make",
        "inventory.low_stock_alert",
        "inventory.low_stock_digest",
        "orders.email_send",
        "payments.credit_note_document_render",
        "payments.invoice_document_render",
        "reviews.decision_email_send",
        "reviews.pending_digest",
        "webhooks.endpoint_disabled_notify",
    ]
    assert {task.max_retries for task in retried} == {RIDE_OUT_RETRIES}
