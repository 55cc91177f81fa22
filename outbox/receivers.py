"""A worker's task signals close the task's outbox request and keep final failures for staff
(the outbox owns task plumbing)."""

from celery.signals import task_failure, task_retry, task_success
from django.dispatch import receiver

from outbox.services import outbox_task_done, outbox_task_retrying, task_failure_record


@receiver(task_success, dispatch_uid="outbox.close_request_of_done_task")
def close_request_of_done_task(sender=None, **extra) -> None:
    """Mark the task's request done: until then the relay treats it as work a broker or a dead
    worker may have lost."""
    outbox_task_done(task_id=getattr(getattr(sender, "request", None), "id", None))


@receiver(task_retry, dispatch_uid="outbox.restart_deadline_of_retried_task")
def restart_deadline_of_retried_task(sender=None, request=None, **extra) -> None:
    """A retry is a new publish with a countdown: the relay's redelivery deadline starts again,
    so an hour of retries is never mistaken for a lost task."""
    outbox_task_retrying(task_id=getattr(request, "id", None))


@receiver(task_failure, dispatch_uid="outbox.record_task_failure")
def record_task_failure(
    sender=None, task_id=None, exception=None, args=None, kwargs=None, **extra
) -> None:
    """Record a task that failed for good: a worker's log scrolls away, an admin row does not.

    Celery sends `task_failure` only when no retry is left, so each row is a request that will
    not happen unless someone acts; its outbox request is closed as failed with it.
    """
    request = getattr(sender, "request", None)
    task_failure_record(
        task_name=getattr(sender, "name", None) or "unknown",
        task_id=task_id,
        args=args,
        kwargs=kwargs,
        exception=exception,
        hostname=getattr(request, "hostname", None) or "",
    )
