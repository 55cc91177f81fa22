"""The outbox's periodic Celery tasks (beat): publish what the broker missed, prune old rows."""

from celery import shared_task

from outbox import services


@shared_task(name="outbox.relay", ignore_result=True)
def outbox_relay() -> int:
    """Publish requests the broker did not take at commit time (beat, every few seconds)."""
    return services.outbox_relay()


@shared_task(name="outbox.prune", ignore_result=True)
def outbox_prune() -> int:
    """Delete long-sent requests and old task failures so the tables stay small (beat, daily)."""
    return services.outbox_prune()
