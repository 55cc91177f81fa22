from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min

from outbox.models import OutboxMessage


@dataclass(frozen=True)
class OutboxBacklog:
    pending: int
    oldest_created_at: datetime | None


def outbox_backlog() -> OutboxBacklog:
    """Count unsent requests and find the oldest: the relay is behind when this grows."""
    row = OutboxMessage.objects.filter(sent_at__isnull=True).aggregate(
        pending=Count("id"), oldest=Min("created_at")
    )
    return OutboxBacklog(pending=row["pending"], oldest_created_at=row["oldest"])
