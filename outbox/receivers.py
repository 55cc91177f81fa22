"""Celery's final task failures become rows staff can see (the outbox owns task plumbing)."""

from celery.signals import task_failure
from django.dispatch import receiver

from outbox.services import task_failure_record


@receiver(task_failure, dispatch_uid="outbox.record_task_failure")
def record_task_failure(
    sender=None, task_id=None, exception=None, args=None, kwargs=None, **extra
) -> None:
    """Record a task that failed for good: a worker's log scrolls away, an admin row does not.

    Celery sends `task_failure` only when no retry is left, so each row is a request that will
    not happen unless someone acts.
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
